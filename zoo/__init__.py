"""uncertainty-zoo: pretrained, uncertainty-aware PyTorch classifiers.

The public API is what this module exports. It loads lazily, so that ``import zoo`` and the
``zoo`` command's help stay fast: torch is imported on first use of a name that needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from zoo.errors import (
    CheckpointError,
    ChecksumMismatchError,
    ConfigFileError,
    DuplicateModelError,
    InvalidInputError,
    ModelConfigError,
    StateDictMismatchError,
    UnknownModelError,
    WeightsFileError,
    ZooError,
)

__version__ = "0.1.0"

_LAZY_NAMES = {
    "Prediction": "zoo.prediction",
    "ZooModel": "zoo.models.base",
    "create_model": "zoo.registry",
    "from_pretrained": "zoo.pretrained",
    "kl_divergence": "zoo.layers.bayesian",
    "list_models": "zoo.registry",
    "register_model": "zoo.registry",
}
_LAZY_MODULES = ("layers", "models")

if TYPE_CHECKING:
    from zoo import layers, models
    from zoo.layers.bayesian import kl_divergence
    from zoo.models.base import ZooModel
    from zoo.prediction import Prediction
    from zoo.pretrained import from_pretrained
    from zoo.registry import create_model, list_models, register_model

__all__ = [
    "CheckpointError",
    "ChecksumMismatchError",
    "ConfigFileError",
    "DuplicateModelError",
    "InvalidInputError",
    "ModelConfigError",
    "Prediction",
    "StateDictMismatchError",
    "UnknownModelError",
    "WeightsFileError",
    "ZooError",
    "ZooModel",
    "__version__",
    "create_model",
    "from_pretrained",
    "kl_divergence",
    "layers",
    "list_models",
    "models",
    "register_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"zoo.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
