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

from zoo.errors import ChecksumMismatchError, PretrainedWeightsError

if TYPE_CHECKING:
    from zoo.models.base import ZooModel

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
        license: SPDX-style license of the weights.
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
    license: str
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


def load_weights(entry: PretrainedWeights) -> ZooModel:
    """The model of ``entry``, loaded offline from the package, in eval mode.

    The folder's ``config.json`` must pin the registry's sha256, and `zoo.from_pretrained`
    then checks the weights file against that pin and loads it strictly.

    Raises:
        ChecksumMismatchError: the installed files are not the published ones.
        CheckpointError: the installed folder is damaged.
    """
    from zoo.pretrained import CONFIG_NAME, WEIGHTS_NAME, from_pretrained, read_config

    pinned = read_config(entry.folder / CONFIG_NAME).weights_sha256
    if pinned != entry.sha256:
        raise ChecksumMismatchError(
            entry.folder / WEIGHTS_NAME,
            f"its config.json pins sha256 {pinned}, but the registry pins {entry.sha256}; "
            "reinstall uncertainty-zoo",
        )
    return from_pretrained(entry.folder)
