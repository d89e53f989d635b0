"""Reading image files as MNIST-like 28x28 grayscale digits, and classifying them.

MNIST digits are light on a dark background. An image file of any size and colour mode
becomes one in four steps:

1. grayscale: colour is converted to luminance; transparent pixels are shown on white, as an
   image viewer shows them;
2. with ``invert``, dark-on-light becomes light-on-dark (use it for ink on paper);
3. a non-square image is padded to a square with black, centred, so the digit keeps its shape;
4. anything but 28x28 is resized to 28x28 (Lanczos). A 28x28 file is taken pixel for pixel.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from zoo.devices import seeded
from zoo.errors import ImageFileError
from zoo.files import FileTooLargeError, read_file
from zoo.limits import MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE
from zoo.models.base import ZooModel
from zoo.options import DEFAULT_SAMPLES
from zoo.preprocessing import IMAGE_SIZE
from zoo.text import escaped

# The formats an image file may be in. Others, EPS among them (which PIL hands to Ghostscript),
# are never opened.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")


def read_digit_image(path: str | os.PathLike[str], invert: bool = False) -> Tensor:
    """Read ``path`` as a (28, 28) uint8 digit, light on dark (see the module docstring).

    The image's size is read from its header and checked before it is decoded: at most
    `MAX_IMAGE_PIXELS` pixels and `MAX_IMAGE_SIDE` on its longer side, which also bounds the
    square it is padded to. A few hundred bytes of PNG can otherwise declare a 200,000-pixel
    wide image whose padded square needs 40 GB.

    Raises:
        ImageFileError: the file is missing, unreadable, not an image, or too large.
    """
    shown_path = escaped(str(path))
    try:
        data = read_file(path, MAX_IMAGE_FILE_BYTES)
        with warnings.catch_warnings():  # PIL's own, looser bomb check: ours comes first
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
                _check_size(image.size, shown_path)
                image.load()
                grayscale = _grayscale(ImageOps.exif_transpose(image))
    except ImageFileError:
        raise
    except FileTooLargeError as error:
        raise ImageFileError(f"{shown_path}: the file is {error}") from None
    except UnidentifiedImageError:
        formats = ", ".join(IMAGE_FORMATS)
        raise ImageFileError(
            f"{shown_path}: not an image in a format read here ({formats})"
        ) from None
    except (OSError, Image.DecompressionBombError, ValueError) as error:
        raise ImageFileError(
            f"{shown_path}: cannot read it as an image ({escaped(str(error))})"
        ) from None
    if invert:
        grayscale = ImageOps.invert(grayscale)
    if grayscale.size != (IMAGE_SIZE, IMAGE_SIZE):
        side = max(grayscale.size)
        grayscale = ImageOps.pad(grayscale, (side, side), color=0)
        grayscale = grayscale.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    pixels = torch.frombuffer(bytearray(grayscale.tobytes()), dtype=torch.uint8)
    return pixels.reshape(IMAGE_SIZE, IMAGE_SIZE)


def _check_size(size: tuple[int, int], shown_path: str) -> None:
    width, height = size
    if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise ImageFileError(
            f"{shown_path}: the image is {width:,} x {height:,} pixels; images may be at most "
            f"{MAX_IMAGE_SIDE:,} pixels on a side and {MAX_IMAGE_PIXELS:,} pixels in all: "
            "scale it down first"
        )


def _grayscale(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I;16"):  # 16-bit grayscale: scale to 8 bits, not clip
        image = image.convert("I").point(lambda value: value / 257)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, "white")
        image = Image.alpha_composite(white, rgba)
    return image.convert("L")


def classify_files(
    model: ZooModel,
    paths: Sequence[str | os.PathLike[str]],
    samples: int = DEFAULT_SAMPLES,
    invert: bool = False,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Classify image files in one batch; one JSON-ready entry per path, in the same order.

    An entry holds ``image`` (the path) and either the fields of `Prediction.per_image` or,
    for a file that cannot be read, ``error``: one bad file does not stop the others. The
    samples are seeded with ``seed``, so the same files get the same votes.
    """
    entries: list[dict[str, Any]] = []
    digits: list[Tensor] = []
    for path in paths:
        try:
            digits.append(read_digit_image(path, invert=invert))
            entries.append({"image": str(path)})
        except ImageFileError as error:
            entries.append({"image": str(path), "error": str(error)})
    if digits:
        with seeded(seed, next(model.parameters()).device):
            prediction = model.predict(torch.stack(digits), samples)
        readable = (entry for entry in entries if "error" not in entry)
        for entry, result in zip(readable, prediction.per_image(model.class_labels), strict=True):
            entry.update(result)
    return entries
