"""Augmentation that runs on the training device, on whole batches at once."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_shift(
    images: Tensor, max_shift: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """Translate each image of (B, H, W) ``images`` by its own random offset.

    Each image moves by whole pixels, up to ``max_shift`` in each direction and independently
    along each axis; what moves in is black (0), like MNIST's background. One padded copy and
    one gather serve the whole batch. Offsets come from ``generator``, by default the device's
    default generator, which the training seed fixes.
    """
    if max_shift == 0:
        return images
    batch, height, width = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    offsets = torch.randint(
        0, 2 * max_shift + 1, (2, batch, 1), device=images.device, generator=generator
    )
    rows = torch.arange(height, device=images.device) + offsets[0]  # (B, H)
    columns = torch.arange(width, device=images.device) + offsets[1]  # (B, W)
    index = torch.arange(batch, device=images.device)[:, None, None]
    return padded[index, rows[:, :, None], columns[:, None, :]]


def random_affine(
    images: Tensor,
    max_shift: float,
    max_rotation: float,
    max_scale: float,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Move, turn and resize each image of (B, H, W) ``images`` by its own random amounts.

    Each image is shifted by up to ``max_shift`` pixels along each axis, rotated by up to
    ``max_rotation`` degrees either way, and scaled by a factor within 1 +- ``max_scale``, all
    drawn uniformly from ``generator`` (by default the device's); bilinear resampling of the
    whole batch happens in one ``grid_sample``, and what moves in is black. Returns float
    pixels on the 0-255 scale of the input.
    """
    batch, height, width = images.shape
    uniform = torch.rand(4, batch, device=images.device, generator=generator) * 2 - 1  # U(-1, 1)
    angle = torch.deg2rad(uniform[0] * max_rotation)
    inverse_scale = 1 / (1 + uniform[1] * max_scale)
    cos, sin = torch.cos(angle) * inverse_scale, torch.sin(angle) * inverse_scale
    shift_x, shift_y = uniform[2] * max_shift * 2 / width, uniform[3] * max_shift * 2 / height
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1
    )  # (B, 2, 3): output pixel -> input pixel, in [-1, 1] coordinates
    pixels = images.unsqueeze(1).float()
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[
        :, 0
    ]
