"""Training recipes: a TOML file that fixes everything a training run does.

A recipe is checked completely before any training starts. An unknown key, a value of the
wrong type, or an unknown model, optimiser or schedule raises `RecipeError` naming the key, so
a typo never trains for fifteen minutes with a default in its place.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import RecipeError, ZooError
from zoo.files import NotARegularFileError, expand_home, read_file
from zoo.limits import (
    MAX_EPOCHS,
    MAX_LEARNING_RATE,
    MAX_NAME_LENGTH,
    MAX_RECIPE_BYTES,
    MAX_SAMPLES,
    MAX_TRAINING_ROWS,
    MAX_WEIGHT_DECAY,
)
from zoo.options import OOD_DATASETS, SEED_RANGE, TRAINING_DATASETS
from zoo.text import shown
from zoo.training.toml_writer import dump_toml

if TYPE_CHECKING:
    from zoo.models.base import ZooModel

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "step", "constant")
SELECTIONS = ("last", "best_nll")
DISTRIBUTIONS = ("batches", "members")
# The run's default folder is runs/<name>, so a name never climbs out of it.
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
# What the training data, not the recipe, decides; and what only zoo.load may do.
_DATA_DECIDED_KWARGS = ("num_classes", "class_labels", "weights")


@dataclass(frozen=True)
class ModelSection:
    """Which registered architecture to train, and its constructor arguments."""

    architecture: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSection:
    """The training data and its on-device augmentation.

    With rotation and scaling off, shifts are by whole pixels and exact; otherwise every image
    goes through one random affine map, resampled bilinearly.
    """

    dataset: str = "mnist"
    validation_size: int = 5000
    max_shift: int = 2
    max_rotation: float = 0.0
    max_scale: float = 0.0


@dataclass(frozen=True)
class OptimizerSection:
    """The optimiser and its hyper-parameters; momentum and nesterov apply to SGD only."""

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False


@dataclass(frozen=True)
class ScheduleSection:
    """How the learning rate moves, stepped after every batch."""

    name: str = "onecycle"
    warmup_fraction: float = 0.25
    final_lr_fraction: float = 1e-4
    step_epochs: int = 10
    gamma: float = 0.1


@dataclass(frozen=True)
class TrainingSection:
    """The loss, the batches, how the weights to keep are chosen, and how a GPU runs.

    ``cuda_amp``: bfloat16 autocast on CUDA GPUs that compute in it natively (compute
    capability 8.0 or more). ``cuda_compile``: ``torch.compile`` on CUDA, with static shapes,
    so every epoch's last partial batch is dropped (on every device, so that the schedule
    does not depend on where the run is); a deep ensemble's members are not compiled.
    ``deterministic``: deterministic kernels on GPUs
    (see `zoo.devices.deterministic_algorithms`), for runs that repeat bit for bit.
    ``distribute``: how processes started by torchrun share the work (`DISTRIBUTIONS`):
    "batches", each takes its share of every batch; "members", a deep ensemble's members are
    spread over them, each trained whole by one process. None: "members" for a model with
    members, else "batches".
    """

    epochs: int = 10
    batch_size: int = 128
    label_smoothing: float = 0.0
    loss_samples: int = 1
    kl_weight: float | None = None
    validation_samples: int = 16
    select: str = "last"
    patience: int = 0
    cuda_amp: bool = True
    cuda_compile: bool = False
    deterministic: bool = False
    distribute: str | None = None


@dataclass(frozen=True)
class EvaluationSection:
    """The final `zoo.evaluate` run on the test set, written to eval.json."""

    samples: int = 16
    seed: int = 0
    ood: str = "fashion_mnist"


@dataclass(frozen=True)
class Recipe:
    """A whole training run: model, data, optimiser, schedule, training and evaluation.

    ``training.kl_weight`` left out means 1 / (training images) for a Bayesian model (see
    `with_default_kl_weight`); only Bayesian models take it.
    """

    name: str
    seed: int
    model: ModelSection
    data: DataSection = field(default_factory=DataSection)
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)

    def replace(self, *, epochs: int | None = None, seed: int | None = None) -> Recipe:
        """This recipe with the command line's ``--epochs`` / ``--seed`` applied, checked."""
        recipe = self
        if epochs is not None:
            training = dataclasses.replace(self.training, epochs=epochs)
            recipe = dataclasses.replace(recipe, training=training)
        if seed is not None:
            recipe = dataclasses.replace(recipe, seed=seed)
        return recipe_from_dict(recipe_to_dict(recipe), "the command line")

    def differences(self, other: Recipe) -> list[str]:
        """The dotted keys whose values differ from ``other``'s."""
        mine, theirs = _flatten(recipe_to_dict(self)), _flatten(recipe_to_dict(other))
        return sorted(
            key for key in mine.keys() | theirs.keys() if mine.get(key) != theirs.get(key)
        )

    def with_default_kl_weight(self, train_size: int) -> Recipe:
        """This recipe with a left-out KL weight filled in: 1 / ``train_size`` for a Bayesian
        model, which is what training uses and what the run's recipe.toml records."""
        if self.training.kl_weight is not None or not self.trains_bayesian_model():
            return self
        training = dataclasses.replace(self.training, kl_weight=1.0 / train_size)
        return dataclasses.replace(self, training=training)

    def with_default_distribution(self) -> Recipe:
        """This recipe with a left-out ``training.distribute`` filled in: "members" for a model
        with members (a deep ensemble), else "batches"; what the run's recipe.toml records."""
        if self.training.distribute is not None:
            return self
        from zoo.models.base import IndependentMembers

        spread = isinstance(self.model_skeleton(), IndependentMembers)
        training = dataclasses.replace(self.training, distribute="members" if spread else "batches")
        return dataclasses.replace(self, training=training)

    def model_skeleton(self) -> ZooModel:
        """The recipe's model on the meta device: its kind and sizes, without weights (and
        without drawing any random numbers)."""
        import torch

        from zoo.factory import create_model

        with torch.device("meta"):
            return create_model(self.model.architecture, **self.model.kwargs)

    def trains_bayesian_model(self) -> bool:
        """Whether the model has weight posteriors, and so a KL term in its loss."""
        from zoo.layers.bayesian import has_bayesian_layers

        return has_bayesian_layers(_build_model(self.model))

    def to_toml(self) -> str:
        """The recipe with every default filled in, as TOML that `read_recipe` reads back."""
        return dump_toml(recipe_to_dict(self))


def read_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and check the recipe at ``path``.

    Raises:
        RecipeError: the file is missing, not TOML, or any key is unknown or invalid.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise RecipeError(f"a recipe is a path to a TOML file, not {type(path).__name__}")
    path = expand_home(Path(path))
    try:
        text = read_file(path, MAX_RECIPE_BYTES).decode("utf-8")
    except NotARegularFileError:
        raise RecipeError(f"cannot read recipe {path}: it is not a regular file") from None
    except UnicodeDecodeError as error:
        raise RecipeError(
            f"recipe {path} is not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    except OSError as error:
        raise RecipeError(f"cannot read recipe {path}: {error.strerror or error}") from None
    return parse_recipe(text, str(path))


def parse_recipe(text: str, source: str = "recipe") -> Recipe:
    """Parse and check recipe TOML; ``source`` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise RecipeError(f"{source} is not valid TOML: {error}") from None
    return recipe_from_dict(raw, source)


def recipe_from_dict(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    """Build a `Recipe` from parsed TOML, checking every key, type and choice."""
    recipe = _build(Recipe, raw, "", source)
    _check_values(recipe, source)
    return recipe


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as nested dicts, as TOML would hold it: keys left out are absent."""
    return _without_none(dataclasses.asdict(recipe))


def _without_none(table: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _without_none(value) if isinstance(value, dict) else value
        for key, value in table.items()
        if value is not None
    }


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections as one dict of dotted keys; model arguments stay one value."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and key != "kwargs":
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    """Instantiate dataclass ``cls`` from table ``raw``; keys are named as dotted paths."""
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: '{prefix.rstrip('.')}' must be a table")
    hints = typing.get_type_hints(cls)
    fields = {item.name: item for item in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"[{prefix.rstrip('.')}]" if prefix else "the top level"
        raise RecipeError(
            f"{source}: unknown key '{prefix}{unknown[0]}'; {where} takes: {', '.join(fields)}"
        )
    values = {}
    for name, item in fields.items():
        key = f"{prefix}{name}"
        if name not in raw:
            if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
                raise RecipeError(f"{source}: missing required key '{key}'")
            continue
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, raw[name], f"{key}.", source)
        else:
            values[name] = _check_type(key, raw[name], hint, source)
    return cls(**values)


def _check_type(key: str, value: Any, hint: Any, source: str) -> Any:
    if isinstance(hint, types.UnionType):  # "float | None": None is spelt by leaving the key out
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    expected = typing.get_origin(hint) or hint
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    is_bool = isinstance(value, bool)
    if (expected in (int, float) and is_bool) or not isinstance(value, expected):
        name = {dict: "table", str: "string", bool: "boolean", int: "integer", float: "number"}[
            expected
        ]
        raise RecipeError(f"{source}: '{key}' must be a {name}, got {shown(value)}")
    if expected is float and not math.isfinite(value):
        raise RecipeError(f"{source}: '{key}' must be a finite number, got {value!r}")
    return value


def _check_values(recipe: Recipe, source: str) -> None:
    """The checks that types alone do not make: choices, ranges and the model itself."""

    def require(condition: bool, key: str, message: str) -> None:
        if not condition:
            raise RecipeError(f"{source}: '{key}' {message}")

    _check_choices(recipe, require)
    _check_ranges(recipe, require)
    _check_model_section(recipe.model, require)
    try:
        model = _build_model(recipe.model)
    except ZooError as error:
        raise RecipeError(f"{source}: [model] does not build: {error}") from None
    _check_fit(recipe, model, require)


Require = Callable[[bool, str, str], None]


def _check_choices(recipe: Recipe, require: Require) -> None:
    choices: list[tuple[str, Collection[str]]] = [
        ("data.dataset", TRAINING_DATASETS),
        ("optimizer.name", OPTIMIZERS),
        ("schedule.name", SCHEDULES),
        ("training.select", SELECTIONS),
        ("evaluation.ood", OOD_DATASETS),
    ]
    for key, allowed in choices:
        value = _get(recipe, key)
        require(value in allowed, key, f"must be one of {', '.join(allowed)}, got {shown(value)}")
    distribute = recipe.training.distribute  # None: the model's own way
    require(
        distribute is None or distribute in DISTRIBUTIONS,
        "training.distribute",
        f"must be one of {', '.join(DISTRIBUTIONS)}, got {shown(distribute)}",
    )
    require(
        _NAME.fullmatch(recipe.name) is not None and len(recipe.name) <= MAX_NAME_LENGTH,
        "name",
        f"must be letters, digits, '_', '-' and '.' (not first), at most {MAX_NAME_LENGTH} of "
        f"them, got {shown(recipe.name)}",
    )


def _check_model_section(section: ModelSection, require: Require) -> None:
    from zoo.factory import list_models

    architectures = list_models()
    require(
        section.architecture in architectures,
        "model.architecture",
        f"must be one of {', '.join(architectures)}, got {shown(section.architecture)}",
    )
    for key in _DATA_DECIDED_KWARGS:
        require(key not in section.kwargs, f"model.kwargs.{key}", "is not a recipe setting")


def _check_ranges(recipe: Recipe, require: Require) -> None:
    low, high = SEED_RANGE
    for key in ("seed", "evaluation.seed"):
        require(low <= _get(recipe, key) <= high, key, f"must be from {low} to {high}")
    for key in _AT_LEAST_ONE:
        require(_get(recipe, key) >= 1, key, f"must be at least 1, got {_get(recipe, key)}")
    for key in _NOT_NEGATIVE:
        require(_get(recipe, key) >= 0, key, f"must not be negative, got {_get(recipe, key)}")
    require(recipe.data.max_shift <= 8, "data.max_shift", "must be at most 8 pixels")
    require(recipe.data.max_rotation <= 180, "data.max_rotation", "must be at most 180 degrees")
    require(recipe.data.max_scale < 1, "data.max_scale", "must be below 1")
    require(recipe.optimizer.lr > 0, "optimizer.lr", "must be above 0")
    require(
        recipe.optimizer.lr <= MAX_LEARNING_RATE,
        "optimizer.lr",
        f"must be at most {MAX_LEARNING_RATE:g}, got {recipe.optimizer.lr!r}",
    )
    require(
        recipe.optimizer.weight_decay <= MAX_WEIGHT_DECAY,
        "optimizer.weight_decay",
        f"must be at most {MAX_WEIGHT_DECAY:g}, got {recipe.optimizer.weight_decay!r}",
    )
    require(recipe.optimizer.momentum < 1, "optimizer.momentum", "must be below 1")
    for key in _AT_MOST_EPOCHS:
        value = _get(recipe, key)
        require(value <= MAX_EPOCHS, key, f"must be at most {MAX_EPOCHS:,}, got {value:,}")
    for key in _SAMPLE_COUNTS:
        value = _get(recipe, key)
        require(value <= MAX_SAMPLES, key, f"must be at most {MAX_SAMPLES:,}, got {value:,}")
    training = recipe.training
    require(
        training.batch_size * training.loss_samples <= MAX_TRAINING_ROWS,
        "training.batch_size",
        f"x training.loss_samples must be at most {MAX_TRAINING_ROWS:,} image-samples a "
        f"step, got {training.batch_size:,} x {training.loss_samples:,}",
    )
    for key in ("training.label_smoothing", "schedule.warmup_fraction"):
        require(0 <= _get(recipe, key) < 1, key, "must be in [0, 1)")
    for key in ("schedule.final_lr_fraction", "schedule.gamma"):
        require(0 < _get(recipe, key) <= 1, key, "must be in (0, 1]")


_AT_LEAST_ONE = (
    "training.epochs",
    "training.batch_size",
    "training.loss_samples",
    "training.validation_samples",
    "schedule.step_epochs",
    "evaluation.samples",
)
_AT_MOST_EPOCHS = ("training.epochs", "training.patience", "schedule.step_epochs")
_SAMPLE_COUNTS = ("training.loss_samples", "training.validation_samples", "evaluation.samples")
_NOT_NEGATIVE = (
    "data.validation_size",
    "data.max_shift",
    "data.max_rotation",
    "data.max_scale",
    "training.patience",
    "optimizer.weight_decay",
    "optimizer.momentum",
)


def _check_fit(recipe: Recipe, model: ZooModel, require: Require) -> None:
    """The settings that depend on the model, or on each other."""
    from zoo.layers.bayesian import has_bayesian_layers
    from zoo.models.base import IndependentMembers
    from zoo.models.laplace_lenet import LaplaceLeNet

    training = recipe.training
    if training.kl_weight is not None:
        require(has_bayesian_layers(model), "training.kl_weight", "applies to Bayesian models only")
        require(training.kl_weight >= 0, "training.kl_weight", "must not be negative")
    optimizer = recipe.optimizer
    require(
        not (optimizer.name == "sgd" and optimizer.nesterov and optimizer.momentum == 0),
        "optimizer.nesterov",
        "needs optimizer.momentum above 0",
    )
    require(
        model.stochastic or training.loss_samples == 1,
        "training.loss_samples",
        f"must be 1 for the deterministic {model.architecture}",
    )
    require(
        training.distribute != "members" or isinstance(model, IndependentMembers),
        "training.distribute",
        f'"members" applies to models with members (deep ensembles), not {model.architecture}',
    )
    trains_deterministic_networks = isinstance(model, (IndependentMembers, LaplaceLeNet))
    require(
        not trains_deterministic_networks or training.loss_samples == 1,
        "training.loss_samples",
        f"must be 1 for {model.architecture}, whose training networks are deterministic",
    )
    if recipe.data.validation_size == 0:
        require(
            not isinstance(model, LaplaceLeNet),
            "data.validation_size",
            f"must be above 0 for {model.architecture}, whose prior precision is chosen on them",
        )
        message = "needs validation images; data.validation_size is 0"
        require(training.select == "last", "training.select", message)
        require(training.patience == 0, "training.patience", message)


def _build_model(section: ModelSection) -> ZooModel:
    """The recipe's model, untrained, built without touching the caller's random state."""
    from zoo.devices import seeded
    from zoo.factory import create_model

    with seeded(0):
        return create_model(section.architecture, **section.kwargs)


def _get(recipe: Recipe, dotted: str) -> Any:
    value: Any = recipe
    for part in dotted.split("."):
        value = getattr(value, part)
    return value
