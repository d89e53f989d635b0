"""Save a model to a folder and load it back, strictly and without pickle.

A model folder holds two files:

- ``model.safetensors``: the state dict, in safetensors format;
- ``config.json``: what rebuilds the model (architecture, constructor arguments, classes,
  preprocessing), the zoo version that wrote it, and the sha256 of the weights file.

Loading checks everything before it returns: the config must describe a model the registry can
build, the weights must hash to the pinned sha256 and parse as safetensors, and their tensor
names and shapes must match the model exactly, with finite values. Both files are bounded in
size before they are read. Each failure raises a `CheckpointError` subclass that names the file
and the fix, and nothing half-loaded is ever returned. Pickle is never loaded.

Saving is atomic for the pair: after a crash or a race between two saves, the folder loads as
one whole model, the old or the new (see `_commit`); writers take the folder's lock in turn, and
readers wait for a writer that is mid-way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import safetensors.torch
import torch
from torch import Tensor

from zoo._version import __version__
from zoo.atomic import atomic_write_bytes, sha256_hex, sync_folder
from zoo.errors import (
    CheckpointError,
    ChecksumMismatchError,
    ConfigFileError,
    InvalidInputError,
    StateDictMismatchError,
    WeightsFileError,
    ZooError,
)
from zoo.files import (
    FileTooLargeError,
    Hasher,
    NotARegularFileError,
    expand_home,
    is_regular_file,
    read_file,
)
from zoo.limits import (
    MAX_CONFIG_BYTES,
    MAX_TEMPERATURE,
    MAX_WEIGHTS_BYTES,
    MAX_WEIGHTS_HEADER_BYTES,
)
from zoo.locks import folder_lock
from zoo.registry import build_registered
from zoo.text import is_version, shown

if TYPE_CHECKING:
    from zoo.models.base import ZooModel

Model = TypeVar("Model", bound=torch.nn.Module)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
# What `zoo train` writes beside them, and what a pushed Hub repository holds too.
LOG_NAME = "train_log.jsonl"
RECIPE_NAME = "recipe.toml"
EVAL_NAME = "eval.json"
# What a folder may hold beside the model: how it was trained, and its evaluation.
RECORD_NAMES = (RECIPE_NAME, EVAL_NAME, LOG_NAME)
# config.json's format: 2 adds "temperature", written only when it is not 1, so that an older
# zoo, which would ignore the key, refuses the file instead of predicting uncalibrated.
FORMAT_VERSION = 2
_FORMAT_VERSIONS = (1, 2)

_SHA256 = re.compile(r"[0-9a-f]{64}")
# What saves write before renaming into place (here, and in zoo.atomic): nothing else is removed.
_PENDING = rf"\.{re.escape(WEIGHTS_NAME)}\.[0-9a-f]{{64}}\.pending"
_INTERRUPTED_SAVE = re.compile(
    rf"{_PENDING}|\.(?:{re.escape(CONFIG_NAME)}|{re.escape(WEIGHTS_NAME)}|{_PENDING})"
    rf"\.[0-9a-f]{{8}}\.tmp"
)
_WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_PROBLEMS_SHOWN = 5  # of each kind of a state dict's mismatches, in one message
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
    temperature: float = 1.0

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
            format_version=1 if model.temperature == 1.0 else FORMAT_VERSION,
            temperature=model.temperature,
        )

    def to_json(self) -> str:
        fields = asdict(self)
        if self.temperature == 1.0:  # as format 1 wrote it
            del fields["temperature"]
        return json.dumps(fields, indent=2, allow_nan=False) + "\n"

    def model_arguments(self) -> dict[str, Any]:
        """Every constructor argument of the model this config describes."""
        common = {
            "num_classes": self.num_classes,
            "class_labels": self.class_labels,
            "mean": self.preprocessing["mean"],
            "std": self.preprocessing["std"],
        }
        return common | self.kwargs

    def build_model(self) -> ZooModel:
        """An untrained model of the architecture and arguments this config describes, built
        by name through the registry's table (`zoo.factory` fills it with the built-in
        architectures)."""
        return build_registered(self.architecture, **self.model_arguments())


# Builds the model a config describes; `ModelConfig.build_model` unless a caller knows better.
Builder = Callable[[ModelConfig], "ZooModel"]


def save_pretrained(model: ZooModel, directory: str | os.PathLike[str]) -> Path:
    """Write ``model`` as ``model.safetensors`` and ``config.json`` into ``directory``.

    Other files in the folder are left alone. After a crash or a race at any point, the folder
    loads as the model it held before or as this one, never a mix (see `_commit`). A model
    that could not be loaded back is refused: weights with NaN or infinity, or settings that
    its constructor would reject.

    Raises:
        CheckpointError: the folder cannot be written, or the model is not one to save.
        InvalidInputError: ``directory`` is not a path, or is empty.
    """
    folder = folder_to_write(directory)
    state = model.state_dict()
    _check_tensors(state, folder, "cannot be saved")
    weights = weights_bytes(model)
    if len(weights) > MAX_WEIGHTS_BYTES:
        raise CheckpointError(
            folder,
            f"cannot be saved: its weights take {len(weights):,} bytes, more than the "
            f"{MAX_WEIGHTS_BYTES:,} a zoo model folder may hold, so it could not be loaded",
        )
    config = ModelConfig.describe(model, sha256_hex(weights))
    build_from_config(config, folder / CONFIG_NAME, skeleton=True)  # what loading would refuse
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with folder_lock(folder, exclusive=True) as locked:
            _commit(folder, weights, config, locked)
    except OSError as error:
        raise CheckpointError(folder, f"cannot write the model here: {error}") from error
    return folder


def folder_to_write(directory: object) -> Path:
    """``directory`` as a `Path`, a leading "~" expanded; an empty one is refused, as it would
    mean the current folder."""
    if not isinstance(directory, (str, os.PathLike)):
        raise InvalidInputError(
            f"the folder must be a string or a pathlib.Path, not {type(directory).__name__}"
        )
    if not os.fspath(directory):
        raise InvalidInputError("the folder name is empty; write '.' for the current folder")
    if "\0" in str(os.fspath(directory)):
        raise InvalidInputError(f"the folder name {shown(directory)} holds a NUL character")
    return expand_home(Path(directory))


def _commit(folder: Path, weights: bytes, config: ModelConfig, locked: bool) -> None:
    """Replace the folder's model with ``weights`` and ``config``, under the writer's lock
    (``locked``; without one, nothing a killed save left is touched, as it might be another
    writer's).

    Two files cannot be renamed into place at once, so the config is the commit point:

    1. the weights are written atomically beside the old ones, under a name that holds their
       sha256 (`pending_weights`): a file of that name is always whole;
    2. config.json is replaced atomically: from here on it pins the new weights, which
       `load_folder` finds under that name until
    3. they are renamed over model.safetensors.

    Killed before step 2, the folder holds the old model; killed after it, the new one. The
    next save removes what a killed save left, or renames weights already pinned into place.
    A failure before step 2 removes the new weights; after it, they are the folder's.
    """
    if locked:
        _finish_interrupted_saves(folder)
    pending = pending_weights(folder, config.weights_sha256)
    atomic_write_bytes(pending, weights)
    try:
        atomic_write_bytes(folder / CONFIG_NAME, config.to_json().encode("utf-8"))
    except BaseException:
        if _pinned_sha256(folder) != config.weights_sha256:  # the config is not in place
            pending.unlink(missing_ok=True)
        raise
    os.replace(pending, folder / WEIGHTS_NAME)
    sync_folder(folder)


def pending_weights(folder: Path, sha256: str) -> Path:
    """Where a save puts weights with this sha256 until config.json pins them (`_commit`)."""
    return folder / f".{WEIGHTS_NAME}.{sha256}.pending"


def committed_weights(folder: Path, sha256: str) -> Path:
    """The file holding the weights that config.json pins: model.safetensors, unless a save
    was interrupted after its config was in place and before its weights were."""
    pending = pending_weights(folder, sha256)
    return pending if is_regular_file(pending) else folder / WEIGHTS_NAME


def _pinned_sha256(folder: Path) -> str | None:
    """The sha256 the folder's config.json pins; None if it has no readable one."""
    try:
        return read_config(folder / CONFIG_NAME).weights_sha256
    except ZooError:
        return None


def _finish_interrupted_saves(folder: Path) -> None:
    """Complete what a killed save committed, and remove what killed saves left: weights that
    config.json already pins are renamed into place; temporary configs and weights that no
    config pins are removed."""
    pinned = _pinned_sha256(folder)
    if pinned and is_regular_file(pending_weights(folder, pinned)):
        os.replace(pending_weights(folder, pinned), folder / WEIGHTS_NAME)
    for stray in folder.glob(".*"):
        if _INTERRUPTED_SAVE.fullmatch(stray.name):
            stray.unlink(missing_ok=True)


def weights_bytes(model: ZooModel) -> bytes:
    """The bytes of ``model``'s weights file: its state dict in safetensors format.

    Their sha256 identifies the weights: it is the hash that ``config.json`` pins, and
    evaluation reports it for a model however it was obtained.
    """
    state = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    return safetensors.torch.save(state, metadata={"format": "pt"})


def copy_model_files(folder: Path, destination: Path) -> None:
    """Copy ``folder``'s config.json and the weights it pins into ``destination``, as
    config.json and model.safetensors, while no save can change them."""
    with folder_lock(folder, exclusive=False):
        config_bytes = _config_data(folder / CONFIG_NAME)
        config = _parse_config(config_bytes, folder / CONFIG_NAME)
        weights = _weights_data(committed_weights(folder, config.weights_sha256))
    atomic_write_bytes(destination / CONFIG_NAME, config_bytes)
    atomic_write_bytes(destination / WEIGHTS_NAME, weights)


def load_folder(
    directory: str | Path, expected_sha256: str | None = None, *, build: Builder | None = None
) -> ZooModel:
    """Rebuild the model saved in ``directory`` by `save_pretrained`, in eval mode.

    ``expected_sha256``, the registry's pin for official weights, must equal the sha256 that
    config.json pins. ``build`` builds the model config.json describes; by default, by name
    from the registry's table (`zoo.factory.load_folder` makes sure the built-in
    architectures are in it). `zoo.load` and `zoo.from_pretrained` call this for a folder.

    Nothing is allocated before the files are checked: the config is bounded in size and its
    model is first built on the meta device, without memory; the weights file is bounded in
    size, hashed as it is read, and its tensors must have exactly the names and shapes of that
    model, and finite values, before the model is built for real.

    MC-dropout models stay stochastic in eval mode, so the loaded model samples exactly as the
    saved one did. Runtime state is not saved: the model comes back on the CPU, in float32
    (weights saved in another floating-point precision are cast), and a Bayesian model comes
    back unfrozen.

    Raises:
        CheckpointError: the folder does not exist.
        ConfigFileError: config.json is missing, too large, not JSON, or names an unknown
            architecture, unknown arguments or values the architecture rejects.
        WeightsFileError: model.safetensors is missing, too large, a pickle, not valid
            safetensors, or holds NaN or infinity.
        ChecksumMismatchError: model.safetensors does not hash to the pinned sha256, or
            config.json does not pin ``expected_sha256``.
        StateDictMismatchError: a tensor is missing, unexpected or of the wrong shape.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise CheckpointError(folder, "no such folder; pass a folder written by save_pretrained")
    config_path = folder / CONFIG_NAME
    with folder_lock(folder, exclusive=False):
        config = read_config(config_path)
        if expected_sha256 is not None and config.weights_sha256 != expected_sha256:
            raise ChecksumMismatchError(
                config_path,
                f"pins sha256 {config.weights_sha256}, but the registry pins "
                f"{expected_sha256}: these are not the published weights",
            )
        skeleton = build_from_config(config, config_path, skeleton=True, build=build)
        weights_path = committed_weights(folder, config.weights_sha256)
        state = read_weights(weights_path, config.weights_sha256)
    _check_state(skeleton, state, weights_path)
    model = build_from_config(config, config_path, build=build)
    model.load_state_dict(state, strict=True)
    return model.eval()


def read_config(path: Path) -> ModelConfig:
    """Parse and check config.json, or raise `ConfigFileError` saying what is wrong.

    The file may hold at most `MAX_CONFIG_BYTES`; the values are checked for type and form
    here, and against the architecture when the model is built.
    """
    return _parse_config(_config_data(path), path)


def _config_data(path: Path) -> bytes:
    """The bytes of config.json at ``path``, bounded, or a `ConfigFileError`."""
    try:
        return read_file(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise ConfigFileError(path, f"missing; {_RESAVE}") from None
    except FileTooLargeError as error:
        raise ConfigFileError(path, f"is {error}; it cannot be a zoo config") from None
    except NotARegularFileError:
        raise ConfigFileError(path, f"is not a regular file; {_RESAVE}") from None
    except OSError as error:
        raise ConfigFileError(path, f"is not valid JSON ({error}); {_RESAVE}") from None


def _parse_config(data: bytes, path: Path) -> ModelConfig:
    """``data``, read from ``path``, as a checked `ModelConfig`, or a `ConfigFileError`."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as error:  # ValueError covers bad JSON and UTF-8
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
    if not is_version(raw["zoo_version"]):
        raise ConfigFileError(
            path,
            f"'zoo_version' must be a version such as '0.1.0', not {shown(raw['zoo_version'])}",
        )
    temperature = raw.get("temperature", 1.0)
    if "temperature" in raw and raw["format_version"] < 2:
        raise ConfigFileError(path, "'temperature' needs 'format_version' 2")
    if not _is_temperature(temperature):
        raise ConfigFileError(
            path,
            f"'temperature' must be a number from {1 / MAX_TEMPERATURE:g} to "
            f"{MAX_TEMPERATURE:g}, found {shown(temperature)}",
        )
    return ModelConfig(
        **{key: raw[key] for key in expected_types},
        format_version=raw["format_version"],
        temperature=float(temperature),
    )


def _is_temperature(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return 1 / MAX_TEMPERATURE <= value <= MAX_TEMPERATURE  # NaN fails both


def read_weights(path: Path, expected_sha256: str) -> dict[str, Tensor]:
    """Read a safetensors file whose sha256 must be ``expected_sha256``; never unpickle.

    The file's size is bounded (`MAX_WEIGHTS_BYTES`) before a byte is read, and it is hashed
    as it is read; its tensors are parsed only once the hash matches.
    """
    digest = hashlib.sha256()
    data = _weights_data(path, digest)
    if _is_pickle(data):
        raise WeightsFileError(
            path,
            "is a pickle (torch.save) file, not safetensors, and pickles are never loaded; "
            "load it yourself only if you trust it, then save the model with save_pretrained",
        )
    size_problem = _size_problem(data)
    actual_sha256 = digest.hexdigest()
    if actual_sha256 != expected_sha256:
        detail = f" ({size_problem})" if size_problem else ""
        raise ChecksumMismatchError(
            path,
            f"sha256 is {actual_sha256}, but {CONFIG_NAME} pins {expected_sha256}: the file is "
            f"truncated, corrupted or not the one saved with this config{detail}; download or "
            f"{_RESAVE}",
        )
    if size_problem:
        raise WeightsFileError(path, f"is not a valid safetensors file ({size_problem})")
    try:
        return safetensors.torch.load(data)
    except Exception as error:  # safetensors raises its own error types for bad files
        raise WeightsFileError(path, f"is not a valid safetensors file ({error})") from None


def _weights_data(path: Path, digest: Hasher | None = None) -> bytes:
    """The bytes of the weights file at ``path``, bounded and fed to ``digest`` as they come."""
    try:
        return read_file(path, MAX_WEIGHTS_BYTES, digest)
    except FileNotFoundError:
        raise WeightsFileError(path, f"missing; it must sit next to {CONFIG_NAME}") from None
    except NotARegularFileError:
        raise WeightsFileError(path, "is not a regular file") from None
    except FileTooLargeError as error:
        raise WeightsFileError(
            path, f"is {error}: larger than any zoo model could be, so it is not read"
        ) from None
    except OSError as error:
        raise WeightsFileError(path, f"cannot be read: {error}") from None


def _is_pickle(data: bytes) -> bool:
    """Whether ``data`` opens like a pickle or torch.save archive, in bytes that cannot open a
    safetensors file.

    A safetensors file is an 8-byte little-endian header length followed by the JSON header,
    so its byte 8 is always "{"; its first byte, the length's lowest, can be anything, the
    pickle protocol marker 0x80 included, whether the file is whole or truncated.
    """
    return data.startswith(_PICKLE_MAGIC) and data[8:9] != b"{"


def safetensors_header_length(data: bytes) -> int:
    """The length of the JSON header of safetensors ``data``, from its first 8 bytes
    (little-endian); `ValueError` when there are fewer than 8."""
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes cannot hold a safetensors header")
    return int.from_bytes(data[:8], "little")


def safetensors_header(data: bytes) -> dict[str, Any]:
    """The JSON header of safetensors ``data``: each tensor's dtype, shape and byte range, and
    the file's ``__metadata__``; `ValueError` when the data ends inside it or it is not JSON."""
    length = safetensors_header_length(data)
    if len(data) < 8 + length:
        raise ValueError(f"the data ends inside its {length:,}-byte header")
    header = json.loads(data[8 : 8 + length])
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    return header


def _size_problem(data: bytes) -> str | None:
    """How ``data``'s size disagrees with what its safetensors header declares, if it does."""
    try:
        header_length = safetensors_header_length(data)
    except ValueError as error:
        return str(error)
    if header_length > MAX_WEIGHTS_HEADER_BYTES:
        return f"its header length, {header_length:,} bytes, is more than any zoo model needs"
    if len(data) < 8 + header_length:
        return f"the file ends inside its {header_length:,}-byte header"
    try:
        header = safetensors_header(data)
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
        declared = 8 + header_length + max(ends, default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
        return None  # not a size problem: the parser says what is wrong
    if not isinstance(declared, int) or declared == len(data):
        return None
    return f"its header declares {declared:,} bytes, but the file holds {len(data):,}"


def _check_format_version(version: object, path: Path) -> None:
    if version in _FORMAT_VERSIONS and not isinstance(version, bool):
        return
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise ConfigFileError(
            path,
            f"uses format {version}, newer than this uncertainty-zoo reads ({FORMAT_VERSION}); "
            "upgrade with: pip install -U uncertainty-zoo",
        )
    raise ConfigFileError(
        path,
        f"'format_version' must be {' or '.join(map(str, _FORMAT_VERSIONS))}, found "
        f"{shown(version)}",
    )


def build_skeleton(build: Callable[[], Model]) -> Model:
    """``build()`` on the meta device, where tensors have shapes but no memory, so that a
    model can be checked and described before anything is allocated for it; on the CPU for
    an architecture whose constructor reads tensor values, which the meta device lacks."""
    try:
        with torch.device("meta"):
            return build()
    except (RuntimeError, NotImplementedError):
        return build()


def build_from_config(
    config: ModelConfig, path: Path, *, skeleton: bool = False, build: Builder | None = None
) -> ZooModel:
    """The model ``config`` (read from ``path``) describes, or a `ConfigFileError` naming
    ``path``; with ``skeleton``, built without memory where it can be (see
    `build_skeleton`): enough to check the arguments, count the parameters
    and read the shapes of its tensors, whatever the config asks for."""
    reserved = {"num_classes", "class_labels", "mean", "std"} & set(config.kwargs)
    if reserved:
        raise ConfigFileError(
            path, f"'kwargs' must not repeat {', '.join(sorted(reserved))}; they have own keys"
        )
    try:
        make = config.build_model if build is None else lambda: build(config)
        model = build_skeleton(make) if skeleton else make()
        model.temperature = config.temperature
        return model
    except ZooError as error:
        message = f"does not describe a model this zoo can build: {error}"
        raise ConfigFileError(path, message) from None


def _check_state(skeleton: ZooModel, state: dict[str, Tensor], path: Path) -> None:
    """Refuse ``state`` unless it has exactly the names and shapes of ``skeleton``'s, in
    floating point, and finite values."""
    expected = skeleton.state_dict()
    shared = sorted(state.keys() & expected.keys())
    problems = _first_few(
        [f"missing tensor {name}" for name in sorted(expected.keys() - state.keys())]
    )
    problems += _first_few(
        [f"unexpected tensor {shown(name)[1:-1]}" for name in sorted(state.keys() - expected)]
    )
    problems += _first_few(
        [
            f"{name} holds {state[name].dtype}, not floating-point numbers of 16, 32 or 64 bits"
            for name in shared
            if state[name].dtype not in _WEIGHT_DTYPES
        ]
    )
    problems += _first_few(
        [
            f"{name} has shape {tuple(state[name].shape)}, the model needs "
            f"{tuple(expected[name].shape)}"
            for name in shared
            if state[name].shape != expected[name].shape
        ]
    )
    if problems:
        raise StateDictMismatchError(
            path,
            f"does not fit the {skeleton.architecture} that {CONFIG_NAME} describes: "
            f"{'; '.join(problems)}; save both files together with save_pretrained",
        )
    as_loaded = {name: state[name].to(expected[name].dtype) for name in shared}
    _check_tensors(as_loaded, path, "is refused")  # in the model's dtype: 1e300 is inf there


def _first_few(problems: list[str]) -> list[str]:
    """At most `_PROBLEMS_SHOWN` of one kind of problem, then how many more there are, so
    that a file with thousands of tensors cannot make a message of thousands of lines."""
    if len(problems) <= _PROBLEMS_SHOWN:
        return problems
    return [*problems[:_PROBLEMS_SHOWN], f"and {len(problems) - _PROBLEMS_SHOWN:,} more"]


def _check_tensors(state: dict[str, Tensor], path: Path, verdict: str) -> None:
    """Refuse weights that hold no values (the meta device) or hold NaN or infinity: such a
    model would answer NaN for every image."""
    for name, tensor in state.items():
        if tensor.device.type == "meta":
            raise CheckpointError(path, f"{verdict}: {name} is on the meta device, without values")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WeightsFileError(
                path,
                f"{verdict}: {name} holds NaN or infinite values, so every answer would be NaN",
            )
