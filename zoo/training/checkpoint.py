"""The training checkpoint: everything a killed run needs to go on as if it never stopped.

It holds the model's weights, the optimiser's and the scheduler's state, every random
generator's state, the epoch and the log so far, in ONE safetensors file written atomically
after each epoch: tensors as tensors, everything else as JSON in the file's metadata. Nothing
is pickled, so a checkpoint from anywhere is safe to open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import Tensor

from zoo.atomic import atomic_write_bytes
from zoo.errors import TrainingStateError
from zoo.files import read_file, read_head
from zoo.limits import MAX_CHECKPOINT_BYTES, MAX_EPOCHS
from zoo.pretrained import safetensors_header, safetensors_header_length

CHECKPOINT_NAME = "training_state.safetensors"
_METADATA_KEY = "zoo_training_state"


@dataclass
class TrainingState:
    """Where a run stands after ``epoch`` finished epochs.

    ``best_weights`` are the weights of the epoch with the lowest validation NLL so far (when
    the recipe selects by it), and ``log`` holds one record per finished epoch.
    """

    epoch: int
    recipe_toml: str
    weights: dict[str, Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Tensor]
    log: list[dict[str, Any]] = field(default_factory=list)
    best_weights: dict[str, Tensor] | None = None
    best_nll: float | None = None
    epochs_since_best: int = 0


def save_checkpoint(state: TrainingState, folder: Path) -> Path:
    """Write ``state`` to ``folder / CHECKPOINT_NAME`` atomically; return the path."""
    tensors = {f"weights/{name}": value for name, value in state.weights.items()}
    tensors |= {f"rng/{name}": value for name, value in state.rng.items()}
    if state.best_weights is not None:
        tensors |= {f"best/{name}": value for name, value in state.best_weights.items()}
    optimizer_tensors, optimizer_json = _split_optimizer_state(state.optimizer)
    tensors |= optimizer_tensors
    metadata = {
        "epoch": state.epoch,
        "recipe_toml": state.recipe_toml,
        "optimizer": optimizer_json,
        "scheduler": state.scheduler,
        "log": state.log,
        "best_nll": state.best_nll,
        "epochs_since_best": state.epochs_since_best,
    }
    # Copies: safetensors refuses tensors that share memory, as the weights and the best
    # weights may.
    cpu_tensors = {name: value.detach().to("cpu", copy=True) for name, value in tensors.items()}
    data = safetensors.torch.save(
        cpu_tensors, metadata={"format": "pt", _METADATA_KEY: json.dumps(metadata)}
    )
    path = folder / CHECKPOINT_NAME
    atomic_write_bytes(path, data)
    return path


def load_checkpoint(path: Path) -> TrainingState:
    """Read a checkpoint written by `save_checkpoint`, or raise `TrainingStateError`."""
    try:
        data = read_file(path, MAX_CHECKPOINT_BYTES)
        tensors = safetensors.torch.load(data)
        header = json.loads(_safetensors_metadata(data)[_METADATA_KEY], parse_constant=_refuse)
        _check_header(header)
        return TrainingState(
            epoch=header["epoch"],
            recipe_toml=header["recipe_toml"],
            weights=_with_prefix(tensors, "weights/"),
            optimizer=_join_optimizer_state(
                _with_prefix(tensors, "optimizer/"), header["optimizer"]
            ),
            scheduler=header["scheduler"],
            rng=_with_prefix(tensors, "rng/"),
            log=header["log"],
            best_weights=_with_prefix(tensors, "best/") or None,
            best_nll=header["best_nll"],
            epochs_since_best=header["epochs_since_best"],
        )
    except FileNotFoundError:
        raise TrainingStateError(f"{path} is missing: there is no run to resume here") from None
    except Exception as error:  # OSError, safetensors' own errors, bad JSON, a missing field
        message = f"{path} is not a readable training checkpoint ({error!r})"
        raise TrainingStateError(message) from None


_HEADER_TYPES: dict[str, type | tuple[type, ...]] = {
    "epoch": int,
    "recipe_toml": str,
    "optimizer": dict,
    "scheduler": dict,
    "log": list,
    "best_nll": (int, float, type(None)),
    "epochs_since_best": int,
}


def _check_header(header: object) -> None:
    """Refuse a header whose fields are not of the types `save_checkpoint` writes."""
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    for key, kind in _HEADER_TYPES.items():
        value = header.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"'{key}' is {type(value).__name__}")
    if not 0 <= header["epoch"] <= MAX_EPOCHS or header["epochs_since_best"] < 0:
        raise ValueError("'epoch' or 'epochs_since_best' is out of range")


def _refuse(constant: str) -> None:
    raise ValueError(f"{constant} is not a number a checkpoint holds")


def checkpoint_epoch(path: Path) -> int | None:
    """How many epochs the checkpoint at ``path`` holds, read from its header alone; None when
    there is no readable checkpoint there."""
    try:
        header_length = safetensors_header_length(read_head(path, 8))
        if header_length > MAX_CHECKPOINT_BYTES:
            return None
        metadata = _safetensors_metadata(read_head(path, 8 + header_length))
        return int(json.loads(metadata[_METADATA_KEY])["epoch"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    return safetensors_header(data)["__metadata__"]


def _with_prefix(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {
        name[len(prefix) :]: value for name, value in tensors.items() if name.startswith(prefix)
    }


def _split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors of ``optimizer.state_dict()`` apart, under "optimizer/<param>/<key>"; the rest
    as JSON."""
    tensors = {}
    per_parameter: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer/{index}/{key}"] = value
            else:
                per_parameter.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "state": per_parameter}


def _join_optimizer_state(tensors: dict[str, Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    per_parameter: dict[int, dict[str, Any]] = {
        int(index): dict(values) for index, values in rest["state"].items()
    }
    for name, value in tensors.items():
        index, key = name.split("/", 1)
        per_parameter.setdefault(int(index), {})[key] = value
    # JSON has no tuples; torch's optimisers keep their betas as one.
    groups = [
        group | ({"betas": tuple(group["betas"])} if "betas" in group else {})
        for group in rest["param_groups"]
    ]
    return {"state": per_parameter, "param_groups": groups}


def rng_states(generators: dict[str, torch.Generator], device: torch.device) -> dict[str, Tensor]:
    """The state of every generator a run on ``device`` draws from: the CPU's, the run's own
    ``generators`` by name (those that order the batches, say), and the GPU's it trains on
    (under "cuda<N>" or "mps")."""
    states = {"cpu": torch.get_rng_state()}
    states |= {name: generator.get_state() for name, generator in generators.items()}
    if device.type == "cuda":
        states[f"cuda{device.index or 0}"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        states["mps"] = torch.mps.get_rng_state()
    return states


def restore_rng_states(
    states: dict[str, Tensor], generators: dict[str, torch.Generator], device: torch.device
) -> bool:
    """Put back what `rng_states` saved; return whether it held a state for ``device`` (a CPU
    run needs none), which a run resumed on another GPU or kind of device lacks. One of
    ``generators`` saved on another kind of device (an ensemble member's augmentation) keeps
    its fresh state, and that also returns False."""
    torch.set_rng_state(states["cpu"])
    same_device = True
    for name, generator in generators.items():
        if states[name].shape != generator.get_state().shape:  # saved on another kind
            same_device = False
            continue
        generator.set_state(states[name])
    if device.type == "cpu":
        return same_device
    name = f"cuda{device.index or 0}" if device.type == "cuda" else device.type
    if name not in states:
        return False
    if device.type == "cuda":
        torch.cuda.set_rng_state(states[name], device)
    else:
        torch.mps.set_rng_state(states[name])
    return same_device
