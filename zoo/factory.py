"""Building models by name: the built-in architectures, registered, and the public
`create_model`, `list_models` and `register_model`.

This module imports the built-in models, which registers them in the name table of
`zoo.registry`; everything that builds a model from a name or a folder comes through here (or
through a module that imported it), so the table is always complete when it is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import zoo.models  # noqa: F401  (registers the built-in architectures)
from zoo.pretrained import load_folder as _load_folder
from zoo.registry import Entrypoint, build_registered, registered_names
from zoo.registry import register_model as _register_in_table
from zoo.weights import PretrainedWeights, list_weights

if TYPE_CHECKING:
    from zoo.models.base import ZooModel


def register_model(entrypoint: Entrypoint) -> Entrypoint:
    """Register a function that builds a model, under the function's own name.

    Use it as a decorator. The name must be a lower-case identifier (no ``.``, which separates
    the weights tag) and must not be taken yet, by a built-in model or another: registering
    twice is an error, never an overwrite.

    The model is first built on the meta device when a folder is loaded or described, so that
    a config cannot make the zoo allocate before its weights are checked. A constructor that
    bounds its own sizes and reads no tensor values builds there; one that reads values is
    built on the CPU instead.
    """
    return _register_in_table(entrypoint)


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Return the sorted names that match an fnmatch ``pattern`` such as ``"*lenet"``.

    By default these are architecture names; with ``pretrained=True`` they are the names of
    the shipped weights instead, "architecture.tag" (see `zoo.weights`).
    """
    names = registered_names(pattern)  # checks the pattern
    return list_weights(pattern) if pretrained else names


def create_model(name: str, **kwargs: Any) -> ZooModel:
    """Build the model registered as ``name``, passing ``kwargs`` to its constructor.

    ``name`` is an architecture, which gives an untrained model (pass ``weights="mnist"`` for
    pretrained weights), or "architecture.tag", which gives those weights, like `zoo.load`.

    Raises:
        InvalidInputError: ``name`` is not a string.
        UnknownModelError: no model has that name; the message lists the known ones.
        PretrainedWeightsError: the architecture has no weights with that tag.
        ModelConfigError: the arguments cannot build that model.
    """
    return build_registered(name, **kwargs)


def load_folder(directory: str | Path, expected_sha256: str | None = None) -> ZooModel:
    """The model a ``save_pretrained`` folder holds, in eval mode, built by name; see
    `zoo.pretrained.load_folder` for what is checked and raised."""
    return _load_folder(directory, expected_sha256)


def load_weights(entry: PretrainedWeights) -> ZooModel:
    """The model of shipped weights ``entry``, loaded offline from the package, in eval mode.

    The folder's ``config.json`` must pin the catalogue's sha256, and the weights file must
    hash to it; it is then loaded strictly (see `zoo.pretrained.load_folder`).

    Raises:
        ChecksumMismatchError: the installed files are not the published ones.
        CheckpointError: the installed folder is damaged.
    """
    return _load_folder(entry.folder, expected_sha256=entry.sha256)
