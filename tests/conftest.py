"""Shared fixtures: every test starts from the same seed and builds tiny inputs itself."""

from __future__ import annotations

import pytest
import torch

ARCHITECTURES = ["lenet", "mc_dropout_lenet", "bayesian_lenet"]
STOCHASTIC = ["mc_dropout_lenet", "bayesian_lenet"]


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)


@pytest.fixture
def images() -> torch.Tensor:
    """Six random uint8 28x28 images."""
    generator = torch.Generator().manual_seed(1234)
    return torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8, generator=generator)
