"""Laying out any picture of a digit as MNIST laid out its digits.

LeCun et al. made each MNIST digit by scaling the writer's digit to fit a 20x20 box, keeping
its aspect ratio and anti-aliasing it, and placing that box in a 28x28 frame so that the
centre of mass of its pixels sits at the frame's centre (the row and column 14, to a pixel:
the MNIST training images' centres of mass average 14.00 and 14.01 with a spread of 0.29).
A digit drawn large on a canvas, cropped tight from a scan, or small in a corner of a photo
is nothing like that, and a model trained on MNIST reads it worse. `prepare_digit` lays it
out the MNIST way:

1. grayscale: colour is converted to luminance, transparency shown on white;
2. polarity: MNIST's ink is light on dark. Unless told, the border decides: a border in the
   upper half of the image's range of levels is light paper, and the image is inverted
   (most photos and scans are dark ink on light paper);
3. background: the border's median level is taken as the paper and mapped to black, the
   brightest ink to white, so grey paper and faint ink come out as MNIST's black and white;
   what is fainter than a tenth of the ink is taken for paper texture or noise, and blackened;
4. crop to the ink: the box of the pixels at least a fifth as bright as the brightest, less
   the outermost thousandth of their ink on each side, so that a speck of dust is left out;
5. fit the longer side to 20 pixels, the aspect ratio kept, anti-aliased (bilinear with
   antialiasing when shrinking);
6. paste into 28x28 with the centre of mass on pixel (14, 14), to the nearest pixel.

An image already laid out that way (28x28, a dark border, ink 19 or 20 pixels on its longer
side, centred within a pixel) keeps its pixels; MNIST's own test images all do. Images
larger than `WORKING_SIDE` on a side are first shrunk to it, which bounds the memory a huge
image costs and changes nothing at 20 pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from zoo.errors import BlankImageError, InvalidInputError

FRAME = 28  # the side of an MNIST image
BOX = 20  # the side of the box an MNIST digit is fitted to
CENTRE = 14.0  # where an MNIST digit's centre of mass lies, row and column
WORKING_SIDE = 512  # larger images are shrunk to this first
INK_LEVEL = 0.2  # ink: at least this share of the brightest pixel above the paper
CROP_SHARE = 0.001  # the share of the ink a crop may leave out on each side: specks of dust
NOISE_FLOOR = 0.1  # fainter than this share of the ink is paper texture or noise: black
MIN_CONTRAST = 32 / 255  # less between paper and ink is a blank image
DARK_BORDER = 48 / 255  # a 28x28 image whose border's median is darker may be MNIST-like


@dataclass(frozen=True)
class PreparedDigit:
    """A digit laid out for an MNIST model, and what was done to it.

    Attributes:
        pixels: (28, 28) uint8, light ink on black.
        inverted: whether the image was inverted.
        polarity: "detected" (from the border) or "given" (by the caller).
        layout: "mnist" (laid out as MNIST was), "kept" (already laid out so) or "as-is" (the
            caller's choice: padded to a square and resized to 28x28, nothing else).
    """

    pixels: Tensor
    inverted: bool
    polarity: str
    layout: str

    def describe(self) -> dict[str, Any]:
        """What was done, JSON-ready."""
        return {"inverted": self.inverted, "polarity": self.polarity, "layout": self.layout}


def prepare_digit(image: Any, *, invert: bool | None = None, as_is: bool = False) -> PreparedDigit:
    """Lay out ``image`` as an MNIST digit (see the module docstring).

    Args:
        image: a (H, W) grayscale image, or (H, W, 3) RGB or (H, W, 4) RGBA: a tensor or a
            NumPy array of uint8 (0-255) or floats (0-1), or a PIL image.
        invert: True or False to say whether to invert it; None to decide from its border.
        as_is: only pad it to a square with the background and resize it to 28x28, keeping
            the pixels of a 28x28 image.

    Raises:
        InvalidInputError: not an image of those shapes and types, or with values out of range.
        BlankImageError: no ink: the image has too little contrast to hold a digit.
    """
    grey = grayscale(image)
    if max(grey.shape) > WORKING_SIDE:
        grey = _shrink(grey, WORKING_SIDE / max(grey.shape))
    border = _border(grey)
    if invert is None:
        inverted, polarity = _light_paper(grey, border), "detected"
    else:
        inverted, polarity = bool(invert), "given"
    if inverted:
        grey, border = 1 - grey, 1 - border
    if as_is:
        return PreparedDigit(_square(grey, float(border.median())), inverted, polarity, "as-is")
    if _mnist_like(grey, border):
        return PreparedDigit(_to_uint8(grey), inverted, polarity, "kept")
    paper = float(border.median())
    contrast = float(grey.max()) - paper
    if contrast < MIN_CONTRAST:
        hint = "" if polarity == "detected" else "; is the polarity given the right way round?"
        raise BlankImageError(f"no digit in the image: no ink stands out from its paper{hint}")
    ink = ((grey - paper) / contrast).clamp(0, 1)
    ink = torch.where(ink < NOISE_FLOOR, 0.0, ink)
    strong = torch.where(ink >= INK_LEVEL, ink, 0.0)
    top, bottom = _ink_span(strong.sum(1))
    left, right = _ink_span(strong.sum(0))
    cropped = ink[top:bottom, left:right]
    scale = BOX / max(cropped.shape)
    fitted = F.interpolate(
        cropped[None, None],
        size=_scaled(cropped.shape, scale),
        mode="bilinear",
        antialias=scale < 1,
        align_corners=False,
    )[0, 0].clamp(0, 1)
    return PreparedDigit(_centred(fitted), inverted, polarity, "mnist")


def grayscale(image: Any) -> Tensor:
    """``image`` as a (H, W) float32 tensor of intensities in [0, 1]: colour as luminance (ITU-R
    601, as PIL converts), transparency shown on white, 16-bit grey scaled to 8 bits."""
    if isinstance(image, Image.Image):
        if max(image.size) > 2 * WORKING_SIDE:  # shrink before converting: less memory
            image = image.reduce(max(image.size) // WORKING_SIDE)
        grey = _pil_grayscale(image)
        pixels = torch.frombuffer(bytearray(grey.tobytes()), dtype=torch.uint8)
        return pixels.reshape(grey.height, grey.width).float() / 255
    if not isinstance(image, Tensor):
        try:
            image = torch.as_tensor(image)
        except (TypeError, ValueError, RuntimeError):
            raise InvalidInputError(
                f"an image must be a tensor, a NumPy array or a PIL image, not "
                f"{type(image).__name__}"
            ) from None
    if image.dim() not in (2, 3) or (image.dim() == 3 and image.shape[-1] not in (1, 3, 4)):
        raise InvalidInputError(
            f"an image must be (H, W), (H, W, 3) or (H, W, 4), not {tuple(image.shape)}"
        )
    if image.numel() == 0:
        raise InvalidInputError("the image is empty")
    if image.dtype == torch.uint8:
        values = image.cpu().float() / 255
    elif image.is_floating_point():
        values = image.detach().cpu().float()
        if not torch.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise InvalidInputError("a float image must hold values from 0 to 1")
    else:
        raise InvalidInputError(f"an image must be uint8 or float, not {image.dtype}")
    if values.dim() == 2:
        return values
    if values.shape[-1] == 4:  # on white, as a viewer shows it
        alpha = values[..., 3:]
        values = values[..., :3] * alpha + (1 - alpha)
    if values.shape[-1] == 1:
        return values[..., 0]
    return (values * torch.tensor([0.299, 0.587, 0.114])).sum(-1)


def _pil_grayscale(image: Image.Image) -> Image.Image:
    """A PIL image as 8-bit grey: 16-bit grey scaled, not clipped; transparency on white."""
    if image.mode.startswith("I;16"):
        image = image.convert("I").point(lambda value: value / 257)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, "white")
        image = Image.alpha_composite(white, rgba)
    return image.convert("L")


def _shrink(grey: Tensor, scale: float) -> Tensor:
    return F.interpolate(grey[None, None], size=_scaled(grey.shape, scale), mode="area")[0, 0]


def _scaled(shape: Sequence[int], scale: float) -> tuple[int, int]:
    """(height, width) ``shape`` times ``scale``, rounded, at least 1 pixel."""
    height, width = shape
    return max(1, round(height * scale)), max(1, round(width * scale))


def _light_paper(grey: Tensor, border: Tensor) -> bool:
    """Whether the paper is lighter than the ink: the border, mostly paper, lies in the upper
    half of the image's own range of levels, so that dark ink on dim paper and chalk on a
    grey board are both read right."""
    return float(border.median()) > (float(grey.min()) + float(grey.max())) / 2


def _ink_span(profile: Tensor) -> tuple[int, int]:
    """The first and one past the last row (or column) of ``profile``, the ink per row,
    leaving out the outermost thousandth of the ink on either side: a speck of dust far
    from the digit does not widen its box."""
    cumulative = profile.cumsum(0)
    total = float(cumulative[-1])
    first = int(torch.searchsorted(cumulative, torch.tensor(CROP_SHARE * total), right=True))
    last = int(torch.searchsorted(cumulative, torch.tensor((1 - CROP_SHARE) * total)))
    return first, min(last, len(profile) - 1) + 1


def _border(grey: Tensor) -> Tensor:
    """The pixels of the image's outermost rows and columns."""
    return torch.cat([grey[0], grey[-1], grey[:, 0], grey[:, -1]])


def _mnist_like(grey: Tensor, border: Tensor) -> bool:
    """Whether a light-on-dark ``grey`` is already laid out as MNIST's digits are."""
    if tuple(grey.shape) != (FRAME, FRAME) or float(border.median()) > DARK_BORDER:
        return False
    total = grey.sum()
    if total <= 0:
        return False
    rows, columns = torch.nonzero(grey > 0, as_tuple=True)
    longer = max(int(rows.max() - rows.min()), int(columns.max() - columns.min())) + 1
    centre = _centre_of_mass(grey)
    return BOX - 1 <= longer <= BOX and all(abs(value - CENTRE) <= 1.0 for value in centre)


def _centre_of_mass(ink: Tensor) -> tuple[float, float]:
    total = ink.sum()
    rows = torch.arange(ink.shape[0], dtype=ink.dtype)
    columns = torch.arange(ink.shape[1], dtype=ink.dtype)
    return float((ink.sum(1) * rows).sum() / total), float((ink.sum(0) * columns).sum() / total)


def _centred(fitted: Tensor) -> Tensor:
    """``fitted`` pasted into a black 28x28 frame with its centre of mass on (14, 14), to the
    nearest pixel; what falls outside the frame is cut off."""
    frame = torch.zeros(FRAME, FRAME)
    centre_row, centre_column = _centre_of_mass(fitted)
    top = round(CENTRE - centre_row)
    left = round(CENTRE - centre_column)
    height, width = fitted.shape
    rows = slice(max(top, 0), min(top + height, FRAME))
    columns = slice(max(left, 0), min(left + width, FRAME))
    frame[rows, columns] = fitted[
        rows.start - top : rows.stop - top, columns.start - left : columns.stop - left
    ]
    return _to_uint8(frame)


def _square(grey: Tensor, background: float) -> Tensor:
    """``grey`` padded with ``background`` to a centred square and resized to 28x28, as a
    28x28 image keeps its pixels."""
    height, width = grey.shape
    if (height, width) != (FRAME, FRAME):
        side = max(height, width)
        square = torch.full((side, side), background)
        top, left = (side - height) // 2, (side - width) // 2
        square[top : top + height, left : left + width] = grey
        grey = F.interpolate(
            square[None, None], size=(FRAME, FRAME), mode="bilinear", antialias=True
        )[0, 0]
    return _to_uint8(grey)


def _to_uint8(values: Tensor) -> Tensor:
    return (values.clamp(0, 1) * 255).round().to(torch.uint8)
