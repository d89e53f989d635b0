"""The official pretrained weights that ship inside the package, and their metadata.

Each checkpoint is a ``save_pretrained`` folder under ``zoo/checkpoints/<name>/``, and
``zoo/checkpoints/index.json`` holds one entry per checkpoint: its sha256, parameter count,
the metrics ``zoo eval`` measured, the recipe that trained it, how long training took on which
hardware, its license, and where it is published on the Hugging Face Hub. The index is written
by ``scripts/add_checkpoint.py`` from a finished ``zoo train`` run, never by hand.

Names are ``architecture.tag``, e.g. ``mc_dropout_lenet.mnist``; a bare architecture name stands
for the weights marked default for it.
"""

from __future__ import annotations

import fnmatch
import functools
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import PretrainedWeightsError

if TYPE_CHECKING:
    pass

CHECKPOINTS_DIR = Path(__file__).parent / "checkpoints"
INDEX_NAME = "index.json"
NOT_PUBLISHED = {"repo_id": None, "revision": None}


@dataclass(frozen=True)
class PretrainedWeights:
    """One official checkpoint and what is known about it.

    Attributes:
        name: "architecture.tag".
        architecture: the registered architecture the weights fit.
        default: whether the bare architecture name loads these weights.
        summary: one line for ``zoo list``.
        file: the weights file, relative to ``zoo/checkpoints``; ``config.json`` sits beside it.
        sha256: the sha256 of ``model.safetensors``, checked on every load.
        num_params: the model's parameter count.
        metrics: ``zoo eval``'s grouped metrics (16 samples, seed 0, MNIST test set).
        evaluation: how the metrics were measured: samples, seed, datasets, versions.
        recipe: the recipe file that trained the weights, relative to the repository.
        training: epochs, seconds, device and hardware of the training run.
        license: SPDX-style license of the weights; None where not stated.
        hub: ``repo_id`` and ``revision`` on the Hugging Face Hub, both None until published.
    """

    name: str
    architecture: str
    default: bool
    summary: str
    file: str
    sha256: str
    num_params: int
    metrics: dict[str, dict[str, float]]
    evaluation: dict[str, Any]
    recipe: str
    training: dict[str, Any]
    license: str | None
    hub: dict[str, str | None]

    @property
    def tag(self) -> str:
        return self.name.partition(".")[2]

    @property
    def folder(self) -> Path:
        """The ``save_pretrained`` folder inside the installed package."""
        return (CHECKPOINTS_DIR / self.file).parent

    def to_json_dict(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in fields(self)}


@functools.cache
def all_weights() -> dict[str, PretrainedWeights]:
    """Every shipped checkpoint by name, read from the package's index once."""
    path = CHECKPOINTS_DIR / INDEX_NAME
    if not path.exists():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {name: PretrainedWeights(**entry) for name, entry in sorted(raw.items())}


def list_weights(pattern: str = "*") -> list[str]:
    """Sorted names of the shipped checkpoints that match the fnmatch ``pattern``."""
    return [name for name in all_weights() if fnmatch.fnmatchcase(name, pattern)]


def find_weights(name: str) -> PretrainedWeights | None:
    """The checkpoint ``name`` means: an exact "architecture.tag", or the default weights of a
    bare architecture name; None when there are none."""
    entries = all_weights()
    if name in entries:
        return entries[name]
    defaults = [entry for entry in entries.values() if entry.architecture == name and entry.default]
    return defaults[0] if defaults else None


def weights_for_tag(architecture: str, tag: str) -> PretrainedWeights:
    """The weights of ``architecture`` tagged ``tag``, or `PretrainedWeightsError` listing the
    tags there are."""
    entry = all_weights().get(f"{architecture}.{tag}")
    if entry is not None:
        return entry
    tags = [entry.tag for entry in all_weights().values() if entry.architecture == architecture]
    available = ", ".join(repr(tag) for tag in tags) or "none"
    raise PretrainedWeightsError(f"{architecture} has no weights {tag!r}; available: {available}")


def published_sha256(repo_id: str, commit: str) -> str | None:
    """The sha256 the registry pins for the weights at ``commit`` of Hub repository
    ``repo_id``, if official weights were published there."""
    for entry in all_weights().values():
        if entry.hub.get("repo_id") == repo_id and entry.hub.get("revision") == commit:
            return entry.sha256
    return None
