"""`ZooModel`, the base of every zoo classifier, and `build_model`, which every entrypoint uses.

Output shapes, in one place (B images, S samples, C classes):

============================  ==============================  ===========================
call                          deterministic (``lenet``)       stochastic (MC dropout, BBB)
============================  ==============================  ===========================
``model(x)``                  logits (B, C)                   logits (B, S, C), S = 16
``model(x, samples=S)``       —                               logits (B, S, C)
``model.predict(x, S)``       `Prediction`, S = 1             `Prediction` with S samples
============================  ==============================  ===========================

``x`` is a batch of uint8 images or of normalised floats; see `zoo.preprocessing`.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import numbers
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor, nn

from zoo.errors import InvalidInputError, ModelConfigError
from zoo.limits import (
    MAX_CLASSES,
    MAX_LABEL_LENGTH,
    MAX_NORMALISATION,
    MAX_SAMPLES,
    MAX_TEMPERATURE,
)
from zoo.options import DEFAULT_SAMPLES
from zoo.prediction import Prediction
from zoo.preprocessing import prepare_images
from zoo.text import first_unprintable, shown

if TYPE_CHECKING:
    from zoo.hub import PushResult
    from zoo.report import EvaluationReport

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
# The samples' random draws (dropout masks, weight draws) are made for groups of at most this
# many image-samples, group after group in batch order, whatever the device: so a model gives
# the same numbers (up to float rounding) however a batch is split into chunks to compute.
ROWS_PER_DRAW = 2048
# A forward pass computes a large batch in chunks of at most this many image-samples (rounded
# to whole draw groups), per device type. On the CPU, chunks that stay in cache run fastest:
# unchunked, batches of 1,000 images x 16 samples ran 1.8 (MC dropout) and 2.8 (Bayesian) times
# slower than batches of 128 (scripts/bench_forward.py). A GPU wants large kernels; its chunk
# bounds the activations of one chunk to about 0.5 GB (CUDA) or 0.1 GB (MPS), which is a
# bound chosen by arithmetic, not a measured optimum (bench_forward.py --chunk-rows measures).
# The Bayesian LeNet's conv layers still run one draw group at a time, as each group has its
# own weights; only its linear layers take the whole chunk.
ROWS_PER_CHUNK = {"cpu": 2048, "cuda": 65536, "mps": 16384}

Model = TypeVar("Model", bound="ZooModel")


@runtime_checkable
class IndependentMembers(Protocol):
    """A model made of ``members`` networks trained apart from each other (a deep ensemble).

    The trainer gives each member its own initial weights (`reset_member`, under the member's
    seed), its own batch order and its own augmentation, and trains them all in one pass of
    `forward_members`, which maps (M, B, 28, 28) images, a batch per member, to (M, B, C)
    logits; given a slice of the members, it runs those alone (M of them), which is how
    processes that train one ensemble together share its members.
    """

    members: int

    def reset_member(self, member: int) -> None: ...

    def forward_members(self, images: Tensor, members: slice | None = None) -> Tensor: ...


class ZooModel(nn.Module):
    """A classifier of 1x28x28 images with a uniform prediction API and save/load support.

    Subclasses set `architecture` (the registry name that rebuilds them) and `stochastic`,
    implement ``forward`` with the signature and output shape tabled above, and return their
    own constructor arguments from `architecture_kwargs`, so that ``save_pretrained`` /
    ``from_pretrained`` can rebuild them.

    Args:
        num_classes: number of output classes.
        class_labels: a name for each class; defaults to "0", "1", ...
        mean: mean used to normalise uint8 input scaled to [0, 1].
        std: standard deviation used to normalise uint8 input scaled to [0, 1].
    """

    architecture: ClassVar[str]
    stochastic: ClassVar[bool]
    # For the model card: what the architecture is, as a clause ("a LeNet-5 with ..."), and
    # the papers it follows, as BibTeX.
    about: ClassVar[str] = ""
    references: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        num_classes: int = 10,
        *,
        class_labels: Sequence[str] | None = None,
        mean: float = MNIST_MEAN,
        std: float = MNIST_STD,
    ) -> None:
        super().__init__()
        self.num_classes = _check_num_classes(num_classes)
        self.class_labels = _check_class_labels(class_labels, num_classes)
        self.mean, self.std = _check_normalisation(mean, std)
        self._inputs_known_finite = False
        self._temperature = 1.0
        self.register_forward_hook(_divide_by_temperature)

    @property
    def temperature(self) -> float:
        """T, by which every output logit is divided (each sample's, for a stochastic model):
        1 for a model as trained, the fitted value after temperature scaling (Guo et al.,
        "On Calibration of Modern Neural Networks", ICML 2017; see `zoo.calibrate`). It is
        saved in config.json and loaded with the model."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self._temperature = check_temperature(value)

    def architecture_kwargs(self) -> dict[str, Any]:
        """The architecture's own constructor arguments, as JSON-ready values."""
        raise NotImplementedError

    def prepare_input(self, images: Tensor) -> Tensor:
        """Check ``images`` and return them normalised, (B, 1, 28, 28), on this model's device."""
        parameter = next(self.parameters())
        return prepare_images(
            images,
            mean=self.mean,
            std=self.std,
            device=parameter.device,
            dtype=parameter.dtype,
            check_finite=not self._inputs_known_finite,
        )

    @contextlib.contextmanager
    def inputs_known_finite(self) -> Iterator[None]:
        """Within the block, float inputs are not checked for NaN and infinity.

        For callers that make the inputs themselves, as the trainer does its augmented
        batches: on a GPU the check is a wait for the device on every batch, and a graph
        break under ``torch.compile``. Inputs from anywhere else must stay checked.
        """
        known = self._inputs_known_finite
        self._inputs_known_finite = True
        try:
            yield
        finally:
            self._inputs_known_finite = known

    @torch.no_grad()
    def predict(self, images: Tensor, samples: int = DEFAULT_SAMPLES) -> Prediction:
        """Predict a batch, with its uncertainty, in one batched forward pass.

        Gradients are off; call the model itself to differentiate. The model's train/eval mode
        is left as it is (MC-dropout models stay stochastic in both).

        Args:
            images: uint8 images or normalised floats, (B, 28, 28), (B, 1, 28, 28) or (28, 28).
            samples: S, the number of stochastic forward samples, at most `MAX_SAMPLES`.
                Deterministic models (and a frozen Bayesian model) always give S = 1, so that
                one call fits every model.

        Raises:
            InvalidInputError: images of another shape or type, a bad ``samples``, or outputs
                that are NaN or infinite (a prediction is never NaN).
        """
        samples = check_samples(samples)
        logits = self(images, samples) if self.stochastic else self(images).unsqueeze(1)
        return Prediction.from_logits(logits)  # refuses NaN and infinity

    def samples_per_image(self, samples: int) -> int:
        """How many rows of logits a pass with ``samples`` gives per image: S for a stochastic
        model, 1 for a deterministic one. Memory bounds count these rows."""
        return samples if self.stochastic else 1

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into ``directory``; return it.

        `zoo.from_pretrained` rebuilds exactly this model from the folder.
        """
        from zoo.pretrained import save_pretrained

        return save_pretrained(self, directory)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str | None = None,
        evaluation: EvaluationReport | None = None,
    ) -> PushResult:
        """Publish this model to the Hugging Face Hub repository ``repo_id`` in one commit:
        its weights, config.json and a model card, and ``evaluation`` (a `zoo.evaluate` report
        of it) as eval.json and the card's results. See `zoo.publishing.push_to_hub`.

        ``zoo.from_pretrained(repo_id)`` then loads it back anywhere.
        """
        from zoo.sharing import push_model  # the Hub client and cards, loaded when pushing

        return push_model(
            self,
            repo_id,
            revision=revision,
            private=private,
            token=token,
            commit_message=commit_message,
            evaluation=evaluation,
        )

    @classmethod
    def constructor_arguments(cls) -> list[str]:
        """Names of the keyword arguments the constructor takes, its bases' included."""
        names: list[str] = []
        for klass in cls.__mro__:
            if "__init__" not in vars(klass):
                continue
            parameters = inspect.signature(klass.__init__).parameters.values()
            names += [p.name for p in parameters if p.name not in names and _is_named(p)]
            if not any(p.kind is p.VAR_KEYWORD for p in parameters):
                return names
        return names


def _is_named(parameter: inspect.Parameter) -> bool:
    kinds = (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    return parameter.kind in kinds and parameter.name != "self"


def build_model(model_class: type[Model], kwargs: dict[str, Any]) -> Model:
    """Build ``model_class`` from ``kwargs``, naming any argument it does not take.

    ``weights="tag"`` among the ``kwargs`` loads the official weights of that tag instead
    (see `zoo.weights`); ``weights=None`` builds an untrained model.
    """
    kwargs = dict(kwargs)
    weights = kwargs.pop("weights", None)
    if weights is not None:
        return _pretrained(model_class, weights, kwargs)
    accepted = model_class.constructor_arguments()
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ModelConfigError(
            f"{model_class.architecture} got unknown argument(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(accepted)}"
        )
    return model_class(**kwargs)


def _pretrained(model_class: type[Model], tag: object, kwargs: dict[str, Any]) -> Model:
    """``model_class`` with its official weights tagged ``tag``, from the package: the
    catalogue's entry, then the folder read and checked as `zoo.pretrained.load_folder` does,
    with this class building the model its config describes."""
    from zoo.pretrained import ModelConfig, load_folder
    from zoo.weights import weights_for_tag

    if not isinstance(tag, str):
        raise ModelConfigError(f"weights must be a tag such as 'mnist', or None; got {tag!r}")
    if kwargs:
        raise ModelConfigError(
            f"pretrained weights fix {model_class.architecture}'s arguments; drop "
            f"{', '.join(sorted(kwargs))}, or pass weights=None for an untrained model"
        )
    entry = weights_for_tag(model_class.architecture, tag)

    def build(config: ModelConfig) -> Model:
        if config.architecture != model_class.architecture:
            raise ModelConfigError(
                f"the weights are of a {config.architecture}, not a {model_class.architecture}"
            )
        return build_model(model_class, config.model_arguments())

    return typing.cast(Model, load_folder(entry.folder, entry.sha256, build=build))


def _divide_by_temperature(model: ZooModel, inputs: object, logits: Tensor) -> Tensor:
    return logits if model.temperature == 1.0 else logits / model.temperature


def check_temperature(value: float) -> float:
    """``value`` as a temperature, a float from 1 / `MAX_TEMPERATURE` to `MAX_TEMPERATURE`,
    else a `ModelConfigError`."""
    temperature = check_number("temperature", value)
    if not 1 / MAX_TEMPERATURE <= temperature <= MAX_TEMPERATURE:
        raise ModelConfigError(
            f"temperature must be from {1 / MAX_TEMPERATURE:g} to {MAX_TEMPERATURE:g}, "
            f"got {value!r}"
        )
    return temperature


def rows_per_chunk(device: torch.device) -> int:
    """The image-samples a forward pass computes at once on ``device``; see `ROWS_PER_CHUNK`."""
    return ROWS_PER_CHUNK.get(device.type, ROWS_PER_CHUNK["cpu"])


def images_per_draw(samples: int) -> int:
    """How many images share one draw group of S samples; see `ROWS_PER_DRAW`."""
    return max(1, ROWS_PER_DRAW // samples)


Draws = TypeVar("Draws")


def forward_in_chunks(
    draw: Callable[[int, int], Draws],
    forward_chunk: Callable[[Tensor, int, list[Draws]], Tensor],
    features: Tensor,
    samples: int,
) -> Tensor:
    """S samples of (B, ...) ``features``: (B, S, C) logits, computed chunk by chunk.

    The batch is cut into draw groups of `images_per_draw` images. ``draw(images, samples)``
    makes one group's random draws; it is called for every group in batch order, before the
    chunk that holds the group is computed, so the draws never depend on the chunk size.
    ``forward_chunk(chunk, samples, draws)`` computes a chunk of whole groups, given each
    group's draws in order.
    """
    group = images_per_draw(samples)
    groups_per_chunk = max(1, rows_per_chunk(features.device) // (group * samples))
    outputs = []
    for chunk in features.split(group * groups_per_chunk):
        draws = [draw(len(images), samples) for images in chunk.split(group)]
        outputs.append(forward_chunk(chunk, samples, draws))
    return concatenated(outputs)


def concatenated(tensors: Sequence[Tensor]) -> Tensor:
    """``torch.cat(tensors)``, without the copy when there is one tensor."""
    return tensors[0] if len(tensors) == 1 else torch.cat(list(tensors))


def check_samples(samples: int) -> int:
    """Return ``samples`` as an int from 1 to `MAX_SAMPLES`, else raise `InvalidInputError`."""
    return check_positive_integer("samples", samples, MAX_SAMPLES)


def check_positive_integer(name: str, value: int, maximum: int | None = None) -> int:
    """Return ``value`` as a positive int (at most ``maximum``), else raise
    `InvalidInputError` naming ``name``."""
    if not _is_integer(value) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {shown(value)}")
    if maximum is not None and value > maximum:
        raise InvalidInputError(f"{name} must be at most {maximum:,}, got {value:,}")
    return int(value)


def check_number(name: str, value: float) -> float:
    """Return ``value`` as a finite float, else raise `ModelConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not _is_finite(value):
        raise ModelConfigError(f"{name} must be a finite number, got {shown(value)}")
    return float(value)


def _is_finite(value: numbers.Real) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def check_rate(name: str, rate: float) -> float:
    """Return a dropout ``rate`` in [0, 1), else raise `ModelConfigError`."""
    if not 0.0 <= check_number(name, rate) < 1.0:
        raise ModelConfigError(f"{name} must be in [0, 1), got {rate!r}")
    return float(rate)


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_num_classes(num_classes: int) -> int:
    if not _is_integer(num_classes) or not 2 <= num_classes <= MAX_CLASSES:
        raise ModelConfigError(
            f"num_classes must be an integer from 2 to {MAX_CLASSES:,}, got {shown(num_classes)}"
        )
    return int(num_classes)


def _check_class_labels(labels: Sequence[str] | None, num_classes: int) -> list[str]:
    """The labels as a list, each a printable string of at most `MAX_LABEL_LENGTH` characters:
    they are printed by ``zoo predict`` and ``zoo info``, and a config from the Hub sets them."""
    if labels is None:
        return [str(index) for index in range(num_classes)]
    if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
        raise ModelConfigError(f"class_labels must be a list of strings, got {shown(labels)}")
    if len(labels) != num_classes:
        raise ModelConfigError(
            f"class_labels has {len(labels)} entries but num_classes is {num_classes}"
        )
    for index, label in enumerate(labels):
        if len(label) > MAX_LABEL_LENGTH:
            raise ModelConfigError(
                f"class label {index} is {len(label):,} characters long; at most "
                f"{MAX_LABEL_LENGTH} are allowed"
            )
        if first_unprintable(label) is not None:
            raise ModelConfigError(
                f"class label {index}, {shown(label)}, holds a control character, which could "
                "rewrite what a terminal shows; labels must be printable text"
            )
    return list(labels)


def _check_normalisation(mean: float, std: float) -> tuple[float, float]:
    """``mean`` and ``std`` as floats, within bounds that keep normalised pixels far from
    overflow: |mean| <= `MAX_NORMALISATION` and 1 / `MAX_NORMALISATION` <= std <=
    `MAX_NORMALISATION` (a std of 1e-300 makes every output NaN)."""
    std, mean = check_number("std", std), check_number("mean", mean)
    if std <= 0:
        raise ModelConfigError(f"std must be > 0, got {std!r}")
    if not 1 / MAX_NORMALISATION <= std <= MAX_NORMALISATION:
        raise ModelConfigError(
            f"std must be from {1 / MAX_NORMALISATION:g} to {MAX_NORMALISATION:g}, got {std!r}"
        )
    if abs(mean) > MAX_NORMALISATION:
        raise ModelConfigError(f"mean must be within +-{MAX_NORMALISATION:g}, got {mean!r}")
    return mean, std
