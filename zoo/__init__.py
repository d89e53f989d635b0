"""uncertainty-zoo: pretrained, uncertainty-aware PyTorch classifiers.

The public API is what this module exports. It loads lazily, so that ``import zoo`` and the
``zoo`` command's help stay fast: torch is imported on first use of a name that needs it.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from zoo._version import __version__
from zoo.errors import (
    BlankImageError,
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
    ImageTooLargeError,
    InvalidInputError,
    MissingExtraError,
    ModelConfigError,
    NoDigitError,
    OutputFileError,
    PretrainedWeightsError,
    RecipeError,
    StateDictMismatchError,
    TrainingDivergedError,
    TrainingProcessError,
    TrainingStateError,
    UnknownModelError,
    WeightsFileError,
    ZooError,
    ZooWarning,
)
from zoo.options import DEFAULT_BATCH_SIZE, DEFAULT_SAMPLES

_LAZY_NAMES = {
    "Comparison": "zoo.comparison",
    "EvaluationReport": "zoo.report",
    "ImageSet": "zoo.data",
    "Prediction": "zoo.prediction",
    "PreparedDigit": "zoo.digits",
    "ShiftReport": "zoo.shift",
    "ZooModel": "zoo.models.base",
    "calibrate": "zoo.temperature",
    "create_model": "zoo.factory",
    "ensemble": "zoo.loading",
    "fit_laplace": "zoo.laplace",
    "from_pretrained": "zoo.loading",
    "kl_divergence": "zoo.layers.bayesian",
    "list_models": "zoo.factory",
    "load": "zoo.loading",
    "load_dataset": "zoo.data",
    "prepare_digit": "zoo.digits",
    "push_to_hub": "zoo.publishing",
    "register_model": "zoo.factory",
}
_LAZY_MODULES = ("layers", "metrics", "models", "training", "weights")

if TYPE_CHECKING:
    import torch

    from zoo import layers, metrics, models, training, weights
    from zoo.comparison import Comparison
    from zoo.data import ImageSet, load_dataset
    from zoo.digits import PreparedDigit, prepare_digit
    from zoo.factory import create_model, list_models, register_model
    from zoo.laplace import fit_laplace
    from zoo.layers.bayesian import kl_divergence
    from zoo.loading import ensemble, from_pretrained, load
    from zoo.models.base import ZooModel
    from zoo.prediction import Prediction
    from zoo.publishing import push_to_hub
    from zoo.report import EvaluationReport
    from zoo.shift import ShiftReport
    from zoo.temperature import calibrate

__all__ = [
    "BlankImageError",
    "CheckpointError",
    "ChecksumMismatchError",
    "Comparison",
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
    "ImageTooLargeError",
    "InvalidInputError",
    "MissingExtraError",
    "ModelConfigError",
    "NoDigitError",
    "OutputFileError",
    "Prediction",
    "PreparedDigit",
    "PretrainedWeightsError",
    "RecipeError",
    "ShiftReport",
    "StateDictMismatchError",
    "TrainingDivergedError",
    "TrainingProcessError",
    "TrainingStateError",
    "UnknownModelError",
    "WeightsFileError",
    "ZooError",
    "ZooModel",
    "ZooWarning",
    "__version__",
    "calibrate",
    "compare",
    "create_model",
    "ensemble",
    "evaluate",
    "fit_laplace",
    "from_pretrained",
    "kl_divergence",
    "layers",
    "list_models",
    "load",
    "load_dataset",
    "metrics",
    "models",
    "prepare_digit",
    "push_to_hub",
    "register_model",
    "training",
    "weights",
]


def evaluate(
    model: ZooModel | str | os.PathLike[str],
    dataset: str = "mnist",
    ood: str | None = "fashion_mnist",
    samples: int = DEFAULT_SAMPLES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "auto",
    seed: int = 0,
    *,
    ood_score: str = "entropy",
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    shift: str | None = None,
) -> EvaluationReport | ShiftReport:
    """Measure ``model`` on the test split of ``dataset``, and on ``ood`` as unseen data; or,
    with ``shift``, on the MNIST test set shifted step by step.

    The same arguments give the same numbers: the sampling is seeded with ``seed``, and on the
    CPU the result is reproducible bit for bit. On a GPU, TensorFloat-32 is off for the
    evaluation, so that its figures match the CPU's to float rounding. The caller's random
    state is left untouched, and so are the model's device and train/eval mode.

    Args:
        model: a model, or a registered name, a folder written by ``save_pretrained`` or a
            Hub id, which `zoo.load` loads once the other arguments are checked.
        dataset: the in-distribution dataset, "mnist".
        ood: the out-of-distribution dataset, "fashion_mnist", or None to skip OOD metrics.
        samples: S, stochastic samples per image, at most `zoo.limits.MAX_SAMPLES`
            (deterministic models use 1); ``batch_size`` x S is bounded too.
        batch_size: images per forward pass.
        device: "auto", "cpu", "cuda" or "mps".
        seed: seeds the samples drawn.
        ood_score: how an image is scored as OOD: "entropy", "msp" or "mi".
        data_dir: the data root; see `zoo.data`.
        progress: show a progress bar on stderr.
        shift: "rotation", "translation" (Ovadia et al., 2019) or "corruption" (MNIST-C, Mu
            and Gilmer, 2019; see `zoo.shift`): the figures at every step of that shift, as a
            `zoo.ShiftReport`; ``ood`` and ``ood_score`` play no part then (each step's AUROC
            scores the shifted images against the unshifted ones by entropy).

    Returns:
        The metrics, grouped as classification, calibration, selective and ood, with the
        provenance of the run (see `zoo.evaluation.evaluate`, which measures a model object);
        with ``shift``, a row of figures per step.
    """
    from zoo.evaluation import check_arguments
    from zoo.evaluation import evaluate as evaluate_model
    from zoo.loading import load
    from zoo.models.base import ZooModel, check_samples

    arguments: dict[str, Any] = {"dataset": dataset, "ood": ood, "samples": samples}
    arguments |= {"batch_size": batch_size, "device": device, "seed": seed}
    arguments |= {"ood_score": ood_score, "data_dir": data_dir, "progress": progress}
    if shift is not None:
        from zoo.shift import check_shift, evaluate_shift

        check_shift(shift, dataset)
        del arguments["dataset"], arguments["ood"], arguments["ood_score"]
        measure: Callable[..., Any] = functools.partial(evaluate_shift, kind=shift)
    else:
        measure = evaluate_model
    if isinstance(model, ZooModel):
        return measure(model, **arguments)
    check_samples(samples)
    if not isinstance(model, (str, os.PathLike)):
        raise InvalidInputError(
            f"model must be a zoo model, a model folder or a registered name, not "
            f"{type(model).__name__}"
        )
    check_arguments(dataset, ood, samples, batch_size, seed, ood_score)
    return measure(load(model), **arguments, source=str(model))


def compare(
    models: Sequence[ZooModel | str | os.PathLike[str]],
    *,
    shift: str | None = None,
    dataset: str = "mnist",
    ood: str | None = "fashion_mnist",
    samples: int = DEFAULT_SAMPLES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "auto",
    seed: int = 0,
    ood_score: str = "entropy",
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Comparison:
    """Measure several ``models`` on the same data, each as `evaluate` would alone.

    The test sets are read once, and with ``shift`` the shifted sets are built once, for all
    the models; each model draws its samples from ``seed``, so its figures are those `evaluate`
    gives it. The other arguments mean what they mean there.

    Args:
        models: 2 to `zoo.limits.MAX_COMPARED_MODELS` models, registered names, folders or
            Hub ids. A name labels its column; a model object is labelled by its
            architecture (numbered when several share one).

    Returns:
        A `zoo.Comparison`: a report per model, and a table with a column per model.
    """
    from zoo.comparison import check_models, labels_of
    from zoo.comparison import compare as compare_models
    from zoo.devices import select_device
    from zoo.evaluation import check_arguments, check_model
    from zoo.loading import load
    from zoo.models.base import ZooModel, check_samples
    from zoo.shift import check_shift

    if isinstance(models, (str, os.PathLike, ZooModel)) or not isinstance(models, Sequence):
        raise InvalidInputError("models must be a list of models, names, folders or Hub ids")
    labelled = list(zip(labels_of(models), models, strict=True))
    check_models(labelled)
    if shift is None:
        check_arguments(dataset, ood, samples, batch_size, seed, ood_score)
    else:
        check_shift(shift, dataset)
        check_arguments("mnist", None, samples, batch_size, seed, "entropy")
    select_device(device)
    for _, model in labelled:
        if isinstance(model, ZooModel):
            check_model(model, check_samples(samples), batch_size)
    loaded = [
        (label, model if isinstance(model, ZooModel) else load(model)) for label, model in labelled
    ]
    return compare_models(
        loaded,
        shift=shift,
        dataset=dataset,
        ood=ood,
        samples=samples,
        batch_size=batch_size,
        device=device,
        seed=seed,
        ood_score=ood_score,
        data_dir=data_dir,
        progress=progress,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"zoo.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
