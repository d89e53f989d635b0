"""Reading image files as MNIST-like 28x28 grayscale digits.

MNIST digits are light on a dark background. An image file of any size and colour mode
becomes one in four steps:

1. grayscale: colour is converted to luminance; transparent pixels are shown on white, as an
   image viewer shows them;
2. with ``invert``, dark-on-light becomes light-on-dark (use it for ink on paper);
3. a non-square image is padded to a square with black, centred, so the digit keeps its shape;
4. anything but 28x28 is resized to 28x28 (Lanczos). A 28x28 file is taken pixel for pixel.
"""

from __future__ import annotations

import os

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from zoo.errors import ImageFileError
from zoo.preprocessing import IMAGE_SIZE


def read_digit_image(path: str | os.PathLike[str], invert: bool = False) -> Tensor:
    """Read ``path`` as a (28, 28) uint8 digit, light on dark (see the module docstring).

    Raises:
        ImageFileError: the file is missing, unreadable or not an image.
    """
    try:
        with Image.open(path) as image:
            image.load()
            grayscale = _grayscale(ImageOps.exif_transpose(image))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as error:
        raise ImageFileError(f"{path}: cannot read it as an image ({error})") from None
    if invert:
        grayscale = ImageOps.invert(grayscale)
    if grayscale.size != (IMAGE_SIZE, IMAGE_SIZE):
        side = max(grayscale.size)
        grayscale = ImageOps.pad(grayscale, (side, side), color=0)
        grayscale = grayscale.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    pixels = torch.frombuffer(bytearray(grayscale.tobytes()), dtype=torch.uint8)
    return pixels.reshape(IMAGE_SIZE, IMAGE_SIZE)


def _grayscale(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, "white")
        image = Image.alpha_composite(white, rgba)
    return image.convert("L")
