"""uncertainty-zoo: pretrained, uncertainty-aware PyTorch classifiers.

The public API is what this module exports. It loads lazily, so that ``import zoo`` and the
``zoo`` command's help stay fast: torch is imported on first use of a name that needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from zoo._version import __version__
from zoo.errors import (
    CheckpointError,
    ChecksumMismatchError,
    ConfigFileError,
    CorruptDatasetError,
    DatasetError,
    DatasetNotFoundError,
    DeviceError,
    DuplicateModelError,
    HubAuthenticationError,
    HubConnectionError,
    HubError,
    HubFileNotFoundError,
    HubOfflineError,
    HubRepositoryNotFoundError,
    HubRevisionNotFoundError,
    ImageFileError,
    InvalidInputError,
    MissingExtraError,
    ModelConfigError,
    OutputFileError,
    PretrainedWeightsError,
    RecipeError,
    StateDictMismatchError,
    TrainingDivergedError,
    TrainingStateError,
    UnknownModelError,
    WeightsFileError,
    ZooError,
    ZooWarning,
)

_LAZY_NAMES = {
    "EvaluationReport": "zoo.report",
    "ImageSet": "zoo.data",
    "Prediction": "zoo.prediction",
    "ZooModel": "zoo.models.base",
    "create_model": "zoo.factory",
    "evaluate": "zoo.evaluation",
    "from_pretrained": "zoo.loading",
    "kl_divergence": "zoo.layers.bayesian",
    "list_models": "zoo.factory",
    "load": "zoo.loading",
    "load_dataset": "zoo.data",
    "push_to_hub": "zoo.publishing",
    "register_model": "zoo.factory",
}
_LAZY_MODULES = ("layers", "metrics", "models", "training", "weights")

if TYPE_CHECKING:
    from zoo import layers, metrics, models, training, weights
    from zoo.data import ImageSet, load_dataset
    from zoo.evaluation import evaluate
    from zoo.factory import create_model, list_models, register_model
    from zoo.layers.bayesian import kl_divergence
    from zoo.loading import from_pretrained, load
    from zoo.models.base import ZooModel
    from zoo.prediction import Prediction
    from zoo.publishing import push_to_hub
    from zoo.report import EvaluationReport

__all__ = [
    "CheckpointError",
    "ChecksumMismatchError",
    "ConfigFileError",
    "CorruptDatasetError",
    "DatasetError",
    "DatasetNotFoundError",
    "DeviceError",
    "DuplicateModelError",
    "EvaluationReport",
    "HubAuthenticationError",
    "HubConnectionError",
    "HubError",
    "HubFileNotFoundError",
    "HubOfflineError",
    "HubRepositoryNotFoundError",
    "HubRevisionNotFoundError",
    "ImageFileError",
    "ImageSet",
    "InvalidInputError",
    "MissingExtraError",
    "ModelConfigError",
    "OutputFileError",
    "Prediction",
    "PretrainedWeightsError",
    "RecipeError",
    "StateDictMismatchError",
    "TrainingDivergedError",
    "TrainingStateError",
    "UnknownModelError",
    "WeightsFileError",
    "ZooError",
    "ZooModel",
    "ZooWarning",
    "__version__",
    "create_model",
    "evaluate",
    "from_pretrained",
    "kl_divergence",
    "layers",
    "list_models",
    "load",
    "load_dataset",
    "metrics",
    "models",
    "push_to_hub",
    "register_model",
    "training",
    "weights",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"zoo.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
