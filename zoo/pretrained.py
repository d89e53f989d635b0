"""Save a model to a folder and load it back, strictly and without pickle.

A model folder holds two files:

- ``model.safetensors``: the state dict, in safetensors format;
- ``config.json``: what rebuilds the model (architecture, constructor arguments, classes,
  preprocessing), the zoo version that wrote it, and the sha256 of the weights file.

Loading checks everything before it returns: the config must describe a model the registry can
build, the weights must hash to the pinned sha256 and parse as safetensors, and their tensor
names and shapes must match the model exactly. Each failure raises a `CheckpointError`
subclass that names the file and the fix, and nothing half-loaded is ever returned. Pickle is
never loaded. The weights are written before the config that pins their hash, each atomically,
so an interrupted save cannot pass for a good one.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
from torch import Tensor

from zoo import __version__
from zoo.atomic import atomic_write_bytes, sha256_hex
from zoo.errors import (
    CheckpointError,
    ChecksumMismatchError,
    ConfigFileError,
    StateDictMismatchError,
    WeightsFileError,
    ZooError,
)
from zoo.models.base import ZooModel
from zoo.registry import create_model

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
# What `zoo train` writes beside them, and what a pushed Hub repository holds too.
LOG_NAME = "train_log.jsonl"
RECIPE_NAME = "recipe.toml"
EVAL_NAME = "eval.json"
FORMAT_VERSION = 1

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol >= 2, torch.save's zip archive
_RESAVE = "save the model again with save_pretrained"


@dataclass(frozen=True)
class ModelConfig:
    """The contents of config.json."""

    architecture: str
    kwargs: dict[str, Any]
    num_classes: int
    class_labels: list[str]
    preprocessing: dict[str, float]
    weights_sha256: str
    zoo_version: str
    format_version: int = FORMAT_VERSION

    @classmethod
    def describe(cls, model: ZooModel, weights_sha256: str) -> ModelConfig:
        return cls(
            architecture=model.architecture,
            kwargs=model.architecture_kwargs(),
            num_classes=model.num_classes,
            class_labels=list(model.class_labels),
            preprocessing={"mean": model.mean, "std": model.std},
            weights_sha256=weights_sha256,
            zoo_version=__version__,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def build_model(self) -> ZooModel:
        """An untrained model of the architecture and arguments this config describes."""
        return create_model(
            self.architecture,
            num_classes=self.num_classes,
            class_labels=self.class_labels,
            mean=self.preprocessing["mean"],
            std=self.preprocessing["std"],
            **self.kwargs,
        )


def save_pretrained(model: ZooModel, directory: str | Path) -> Path:
    """Write ``model`` as ``model.safetensors`` and ``config.json`` into ``directory``."""
    folder = Path(directory)
    weights = weights_bytes(model)
    config = ModelConfig.describe(model, sha256_hex(weights))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / WEIGHTS_NAME, weights)
        atomic_write_bytes(folder / CONFIG_NAME, config.to_json().encode("utf-8"))
    except OSError as error:
        raise CheckpointError(folder, f"cannot write the model here: {error}") from error
    return folder


def weights_bytes(model: ZooModel) -> bytes:
    """The bytes of ``model``'s weights file: its state dict in safetensors format.

    Their sha256 identifies the weights: it is the hash that ``config.json`` pins, and
    evaluation reports it for a model however it was obtained.
    """
    state = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    return safetensors.torch.save(state, metadata={"format": "pt"})


def load_folder(directory: str | Path, expected_sha256: str | None = None) -> ZooModel:
    """Rebuild the model saved in ``directory`` by `save_pretrained`, in eval mode.

    ``expected_sha256``, the registry's pin for official weights, must equal the sha256 that
    config.json pins. `zoo.load` and `zoo.from_pretrained` call this for a
    folder.

    MC-dropout models stay stochastic in eval mode, so the loaded model samples exactly as the
    saved one did. Runtime state is not saved: the model comes back on the CPU, in float32
    (weights saved in another floating-point precision are cast), and a Bayesian model comes
    back unfrozen.

    Raises:
        CheckpointError: the folder does not exist.
        ConfigFileError: config.json is missing, not JSON, or names an unknown architecture,
            unknown arguments or values the architecture rejects.
        WeightsFileError: model.safetensors is missing, a pickle, or not valid safetensors.
        ChecksumMismatchError: model.safetensors does not hash to the pinned sha256, or
            config.json does not pin ``expected_sha256``.
        StateDictMismatchError: a tensor is missing, unexpected or of the wrong shape.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise CheckpointError(folder, "no such folder; pass a folder written by save_pretrained")
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    config = read_config(config_path)
    if expected_sha256 is not None and config.weights_sha256 != expected_sha256:
        raise ChecksumMismatchError(
            config_path,
            f"pins sha256 {config.weights_sha256}, but the registry pins "
            f"{expected_sha256}: these are not the published weights",
        )
    model = _build(config, config_path)
    state = read_weights(weights_path, config.weights_sha256)
    _load_state_strictly(model, state, weights_path)
    return model.eval()


def read_config(path: Path) -> ModelConfig:
    """Parse and check config.json, or raise `ConfigFileError` saying what is wrong."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigFileError(path, f"missing; {_RESAVE}") from None
    except (OSError, ValueError, RecursionError) as error:  # ValueError covers bad JSON/UTF-8
        raise ConfigFileError(path, f"is not valid JSON ({error}); {_RESAVE}") from None
    if not isinstance(raw, dict):
        raise ConfigFileError(path, f"must hold a JSON object, not {type(raw).__name__}")
    _check_format_version(raw.get("format_version"), path)
    expected_types = {
        "architecture": str,
        "kwargs": dict,
        "num_classes": int,
        "class_labels": list,
        "preprocessing": dict,
        "weights_sha256": str,
        "zoo_version": str,
    }
    for key, expected_type in expected_types.items():
        if not isinstance(raw.get(key), expected_type):
            found = "nothing" if key not in raw else type(raw[key]).__name__
            raise ConfigFileError(
                path, f"'{key}' must be a JSON {expected_type.__name__}, found {found}; {_RESAVE}"
            )
    if set(raw["preprocessing"]) != {"mean", "std"}:
        raise ConfigFileError(path, "'preprocessing' must hold exactly 'mean' and 'std'")
    if not _SHA256.fullmatch(raw["weights_sha256"]):
        raise ConfigFileError(path, "'weights_sha256' must be 64 lower-case hex digits")
    return ModelConfig(**{key: raw[key] for key in expected_types}, format_version=FORMAT_VERSION)


def read_weights(path: Path, expected_sha256: str) -> dict[str, Tensor]:
    """Read a safetensors file whose sha256 must be ``expected_sha256``; never unpickle."""
    if not path.exists():
        raise WeightsFileError(path, f"missing; it must sit next to {CONFIG_NAME}")
    if not path.is_file():
        raise WeightsFileError(path, "is not a regular file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise WeightsFileError(path, f"cannot be read: {error}") from None
    if data.startswith(_PICKLE_MAGIC) and not _has_safetensors_header(data):
        raise WeightsFileError(
            path,
            "is a pickle (torch.save) file, not safetensors, and pickles are never loaded; "
            "load it yourself only if you trust it, then save the model with save_pretrained",
        )
    actual_sha256 = sha256_hex(data)
    if actual_sha256 != expected_sha256:
        raise ChecksumMismatchError(
            path,
            f"sha256 is {actual_sha256}, but {CONFIG_NAME} pins {expected_sha256}: the file is "
            f"truncated, corrupted or not the one saved with this config; download or "
            f"{_RESAVE}",
        )
    try:
        return safetensors.torch.load(data)
    except Exception as error:  # safetensors raises its own error types for bad files
        raise WeightsFileError(path, f"is not a valid safetensors file ({error})") from None


def _has_safetensors_header(data: bytes) -> bool:
    """Whether ``data`` opens like safetensors: a little-endian u64 length, then a JSON header.

    A header length can begin with the byte that also opens a pickle, so this tells a real
    safetensors file from a pickle before the pickle error is raised.
    """
    header_length = int.from_bytes(data[:8], "little")
    return len(data) >= 8 + header_length and data[8:9] == b"{"


def _check_format_version(version: object, path: Path) -> None:
    if version == FORMAT_VERSION:
        return
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise ConfigFileError(
            path,
            f"uses format {version}, newer than this uncertainty-zoo reads ({FORMAT_VERSION}); "
            "upgrade with: pip install -U uncertainty-zoo",
        )
    raise ConfigFileError(path, f"'format_version' must be {FORMAT_VERSION}, found {version!r}")


def _build(config: ModelConfig, path: Path) -> ZooModel:
    reserved = {"num_classes", "class_labels", "mean", "std"} & set(config.kwargs)
    if reserved:
        raise ConfigFileError(
            path, f"'kwargs' must not repeat {', '.join(sorted(reserved))}; they have own keys"
        )
    try:
        return config.build_model()
    except ZooError as error:
        message = f"does not describe a model this zoo can build: {error}"
        raise ConfigFileError(path, message) from None


def _load_state_strictly(model: ZooModel, state: dict[str, Tensor], path: Path) -> None:
    expected = model.state_dict()
    problems = [f"missing tensor {name}" for name in sorted(expected.keys() - state.keys())]
    problems += [f"unexpected tensor {name}" for name in sorted(state.keys() - expected.keys())]
    problems += [
        f"{name} holds {state[name].dtype}, not floating-point numbers"
        for name in sorted(state.keys() & expected.keys())
        if not state[name].is_floating_point()
    ]
    problems += [
        f"{name} has shape {tuple(state[name].shape)}, the model needs {tuple(shape)}"
        for name, shape in sorted((name, expected[name].shape) for name in state.keys() & expected)
        if state[name].shape != shape
    ]
    if problems:
        raise StateDictMismatchError(
            path,
            f"does not fit the {model.architecture} that {CONFIG_NAME} describes: "
            f"{'; '.join(problems)}; save both files together with save_pretrained",
        )
    model.load_state_dict(state, strict=True)
