"""Where a model's weights come from, decided in one place.

`load` takes what a user types, in Python or as the ``MODEL`` argument of the ``zoo``
commands, and resolves it in this order:

1. an existing folder: a model written by ``save_pretrained``, loaded by `zoo.from_pretrained`;
2. the name of shipped weights, "architecture.tag" such as ``mc_dropout_lenet.mnist``, or a
   bare architecture name, which stands for its default weights: loaded from the package,
   offline, sha256-checked (see `zoo.weights`).
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo.errors import PretrainedWeightsError, UnknownModelError
from zoo.models.base import ZooModel
from zoo.pretrained import from_pretrained
from zoo.registry import list_models
from zoo.weights import find_weights, list_weights, load_weights, weights_for_tag


def load(name_or_path: str | os.PathLike[str]) -> ZooModel:
    """Load a pretrained model, in eval mode, from a folder or a registered name.

    Raises:
        UnknownModelError: neither an existing folder nor a registered name.
        PretrainedWeightsError: a registered architecture that has no pretrained weights.
        CheckpointError: the folder does not hold a loadable model (see `zoo.from_pretrained`).
        ChecksumMismatchError: shipped weights that are not the published ones.
    """
    source = resolve(name_or_path)
    if isinstance(source, Path):
        return from_pretrained(source)
    entry = find_weights(source)
    if entry is not None:
        return load_weights(entry)
    raise PretrainedWeightsError(
        f"{source!r} has no pretrained weights yet; pass a folder written by save_pretrained, "
        f"or build an untrained model with zoo.create_model({source!r})"
    )


def resolve(name_or_path: str | os.PathLike[str]) -> Path | str:
    """What ``name_or_path`` names: an existing folder (a `Path`) or a registered name (a `str`):
    an architecture or the name of shipped weights.

    Raises:
        UnknownModelError: it is neither.
        PretrainedWeightsError: "architecture.tag" where the architecture has no such weights.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = str(name_or_path)
    if name in list_models() or name in list_weights():
        return name
    architecture, dot, tag = name.partition(".")
    if dot and architecture in list_models():
        weights_for_tag(architecture, tag)  # raises, naming the tags there are
    known = ", ".join(list_weights() + list_models())
    raise UnknownModelError(
        f"{name!r} is neither a model folder nor a registered model; known models: {known}"
    )
