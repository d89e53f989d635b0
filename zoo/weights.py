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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import PretrainedWeightsError

CHECKPOINTS_DIR = Path(__file__).parent / "checkpoints"
INDEX_NAME = "index.json"
NOT_PUBLISHED = {"repo_id": None, "revision": None}


@dataclass(frozen=True)
class ModelDescription:
    """What is known of a model without running it, as its model card tells it: shipped
    weights (`PretrainedWeights`), a model folder, or a model in memory being published.

    Attributes:
        name: "architecture.tag" for shipped weights, the Hub repository id when published.
        architecture: the registered architecture.
        summary: one line for ``zoo list``.
        num_params: the model's parameter count.
        sha256: the sha256 of ``model.safetensors``, checked on every load.
        metrics: ``zoo eval``'s grouped metrics; {} when it has not been evaluated.
        evaluation: how the metrics were measured: samples, seed, datasets, versions.
        shift: by kind (of `zoo.options.SHIFT_KINDS`), the figures under dataset shift:
            "summary" (mean Acc, NLL and ECE over the shifted steps) and "steps"; with
            "samples", "seed" and "device", how they were measured. {} when not measured.
        recipe: the recipe file that trained the weights; "" when unknown.
        training: epochs, seconds, device and hardware of the training run; {} when unknown.
        license: SPDX-style license of the weights; None where not stated.
        hub: ``repo_id`` and ``revision`` on the Hugging Face Hub, None where unknown.
    """

    name: str
    architecture: str
    summary: str
    num_params: int
    sha256: str
    metrics: dict[str, dict[str, float]]
    evaluation: dict[str, Any]
    shift: dict[str, Any]
    recipe: str
    training: dict[str, Any]
    license: str | None
    hub: dict[str, str | None]

    @property
    def tag(self) -> str:
        return self.name.partition(".")[2]


@dataclass(frozen=True)
class PretrainedWeights(ModelDescription):
    """One official checkpoint shipped in the package: its description, and where its files
    are.

    Attributes:
        default: whether the bare architecture name loads these weights.
        file: the weights file, relative to ``zoo/checkpoints``; ``config.json`` sits beside it.
    """

    default: bool
    file: str

    @property
    def folder(self) -> Path:
        """The ``save_pretrained`` folder inside the installed package."""
        return (CHECKPOINTS_DIR / self.file).parent

    def to_json_dict(self) -> dict[str, Any]:
        """The entry as index.json holds it."""
        return {name: getattr(self, name) for name in _INDEX_ORDER}


# The order of an entry's keys in index.json.
_INDEX_ORDER = (
    "name",
    "architecture",
    "default",
    "summary",
    "file",
    "sha256",
    "num_params",
    "metrics",
    "evaluation",
    "shift",
    "recipe",
    "training",
    "license",
    "hub",
)


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
