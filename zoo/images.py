"""Reading image files as MNIST digits, and classifying them.

An image file of any size and colour mode is decoded (its size checked first), turned as its
EXIF orientation says, and laid out as an MNIST digit by `zoo.digits.prepare_digit`:
grayscale, light ink on dark (the polarity read from the border unless given), cropped to the
ink, fitted to 20x20 and centred by its centre of mass in 28x28. Each image is classified
with samples drawn from its own seed, derived from the caller's seed and the image's pixels,
so that an image gets the same answer whatever other images come with it.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from zoo.atomic import sha256_hex
from zoo.devices import check_seed, derived_seed, seeded
from zoo.digits import PreparedDigit, prepare_digit
from zoo.errors import BlankImageError, ImageFileError, ImageTooLargeError, NoDigitError
from zoo.files import FileTooLargeError, read_file
from zoo.limits import MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE
from zoo.models.base import ZooModel
from zoo.options import DEFAULT_SAMPLES
from zoo.text import escaped

# The formats an image file may be in. Others, EPS among them (which PIL hands to Ghostscript),
# are never opened.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")


def read_digit_image(
    path: str | os.PathLike[str], invert: bool | None = None, as_is: bool = False
) -> PreparedDigit:
    """Read ``path`` and lay it out as an MNIST digit (`decode_digit`).

    Raises:
        ImageFileError: the file is missing, unreadable, not an image, too large, or blank.
    """
    shown_path = escaped(str(path))
    try:
        data = read_file(path, MAX_IMAGE_FILE_BYTES)
    except FileTooLargeError as error:
        raise ImageTooLargeError(f"{shown_path}: the file is {error}") from None
    except OSError as error:
        raise ImageFileError(f"{shown_path}: cannot read it ({escaped(str(error))})") from None
    return decode_digit(data, shown_path, invert=invert, as_is=as_is)


def decode_digit(
    data: bytes, shown_name: str, *, invert: bool | None = None, as_is: bool = False
) -> PreparedDigit:
    """Decode the image file ``data`` and lay it out as an MNIST digit
    (`zoo.digits.prepare_digit`, which ``invert`` and ``as_is`` are passed to); errors name
    the image ``shown_name``.

    The image's size is read from its header and checked before it is decoded: at most
    `MAX_IMAGE_PIXELS` pixels and `MAX_IMAGE_SIDE` on its longer side. A few hundred bytes of
    PNG can otherwise declare a 200,000-pixel wide image that needs gigabytes once decoded.

    Raises:
        ImageFileError: not an image in `IMAGE_FORMATS`, too large, or blank.
    """
    try:
        with warnings.catch_warnings():  # PIL's own, looser bomb check: ours comes first
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
                _check_size(image.size, shown_name)
                image.load()
                return prepare_digit(_upright(image), invert=invert, as_is=as_is)
    except ImageFileError:
        raise
    except BlankImageError as error:
        raise NoDigitError(f"{shown_name}: {error}") from None
    except UnidentifiedImageError:
        formats = ", ".join(IMAGE_FORMATS)
        raise ImageFileError(
            f"{shown_name}: not an image in a format read here ({formats})"
        ) from None
    except (OSError, Image.DecompressionBombError, ValueError) as error:
        raise ImageFileError(
            f"{shown_name}: cannot read it as an image ({escaped(str(error))})"
        ) from None


def _upright(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation says; as it is when that metadata is broken,
    which a camera or a stranger may have written."""
    try:
        return ImageOps.exif_transpose(image)
    except (SyntaxError, struct.error, ValueError, TypeError, KeyError, OSError):
        return image


def _check_size(size: tuple[int, int], shown_path: str) -> None:
    width, height = size
    if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(
            f"{shown_path}: the image is {width:,} x {height:,} pixels; images may be at most "
            f"{MAX_IMAGE_SIDE:,} pixels on a side and {MAX_IMAGE_PIXELS:,} pixels in all: "
            "scale it down first"
        )


def classify_files(
    model: ZooModel,
    paths: Sequence[str | os.PathLike[str]],
    samples: int = DEFAULT_SAMPLES,
    invert: bool | None = None,
    seed: int = 0,
    as_is: bool = False,
) -> list[dict[str, Any]]:
    """Classify image files; one JSON-ready entry per path, in the same order.

    An entry holds ``image`` (the path), ``prepared`` (`PreparedDigit.describe`: whether it
    was inverted, how that was decided, how it was laid out) and the fields of
    `Prediction.per_image`; or, for a file that cannot be read or holds no digit, ``error``:
    one bad file does not stop the others.
    """
    entries: list[dict[str, Any]] = []
    for path in paths:
        try:
            digit = read_digit_image(path, invert=invert, as_is=as_is)
        except ImageFileError as error:
            entries.append({"image": str(path), "error": str(error)})
            continue
        (result,) = classify_digits(model, [digit.pixels], samples, seed)
        entries.append({"image": str(path), "prepared": digit.describe()} | result)
    return entries


def classify_digits(
    model: ZooModel, digits: Sequence[Tensor], samples: int = DEFAULT_SAMPLES, seed: int = 0
) -> list[dict[str, Any]]:
    """`Prediction.per_image` of each (28, 28) uint8 digit, its samples drawn from
    `image_seed` (``seed``, its pixels): the same digit gets the same votes in any company."""
    device = next(model.parameters()).device
    results = []
    for pixels in digits:
        with seeded(image_seed(seed, pixels), device):
            prediction = model.predict(pixels.unsqueeze(0), samples)
        results.extend(prediction.per_image(model.class_labels))
    return results


def image_seed(seed: int, pixels: Tensor) -> int:
    """The seed of one image's samples: derived from ``seed`` and the image's pixels."""
    check_seed(seed)
    digest = sha256_hex(bytes(pixels.to(torch.uint8).flatten().tolist()))
    return derived_seed(f"uncertainty-zoo prediction of image {digest} with seed {seed}")
