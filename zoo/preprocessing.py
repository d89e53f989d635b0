"""Input checking and normalisation shared by every zoo model.

Models take either raw ``uint8`` images, which they normalise with their own mean and std, or
float images that are already normalised. Either way the result is a (B, 1, 28, 28) float
tensor on the model's device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.errors import InvalidInputError

IMAGE_SIZE = 28

_ACCEPTED = "(B, 28, 28), (B, 1, 28, 28) or a single (28, 28) image"


def prepare_images(
    images: Tensor,
    *,
    mean: float,
    std: float,
    device: torch.device,
    dtype: torch.dtype,
    check_finite: bool = True,
) -> Tensor:
    """Check ``images`` and return them as normalised (B, 1, 28, 28) floats on ``device``.

    ``uint8`` images are moved to ``device`` first and normalised there, as
    ``(images / 255 - mean) / std``; float images are taken as already normalised. Float
    images are checked to be finite unless ``check_finite`` is False, for callers that made
    them finite themselves: the check waits for the device to finish, once per call.

    Raises:
        InvalidInputError: not a dense tensor with values, a shape other than the accepted
            ones, an integer dtype other than uint8, or a float input holding NaN or infinity.
    """
    if not isinstance(images, Tensor):
        raise InvalidInputError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.layout != torch.strided or images.is_nested:
        layout = "nested" if images.is_nested else str(images.layout)
        raise InvalidInputError(f"images must be a dense tensor, not {layout}")
    if images.device.type == "meta" or device.type == "meta":
        where = "the images are" if images.device.type == "meta" else "the model is"
        raise InvalidInputError(
            f"{where} on the meta device, which holds shapes but no values: nothing to predict"
        )
    batch = _as_batch(images)
    if batch.dtype == torch.uint8:
        return normalise(batch.to(device=device).to(dtype), mean, std)
    if not batch.is_floating_point():
        raise InvalidInputError(
            f"images must be uint8 pixels (0-255) or normalised floats, got dtype {batch.dtype}"
        )
    floats = batch.to(device=device, dtype=dtype)
    if check_finite and not torch.isfinite(floats).all():
        raise InvalidInputError(
            f"float images must be finite in the model's {dtype}, but these hold NaN or infinity"
        )
    return floats


def normalise(pixels: Tensor, mean: float, std: float) -> Tensor:
    """Float ``pixels`` on the 0-255 scale, normalised as ``(pixels / 255 - mean) / std``."""
    return (pixels / 255.0 - mean) / std


def _as_batch(images: Tensor) -> Tensor:
    """View any accepted shape as (B, 1, 28, 28), or say which shapes are accepted."""
    shape = tuple(images.shape)
    if images.dim() == 2:
        images = images.unsqueeze(0)
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4:
        raise InvalidInputError(f"images must have shape {_ACCEPTED}; got {shape}")
    if images.shape[1] != 1:
        raise InvalidInputError(
            f"images must have 1 channel (grayscale), got {images.shape[1]} in shape {shape}; "
            f"accepted shapes: {_ACCEPTED}"
        )
    if images.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise InvalidInputError(
            f"images must be {IMAGE_SIZE}x{IMAGE_SIZE} pixels, got "
            f"{images.shape[-2]}x{images.shape[-1]} in shape {shape}"
        )
    return images
