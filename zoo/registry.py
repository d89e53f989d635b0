"""The model registry: every architecture the zoo can build, by name.

Names are ``architecture`` or ``architecture.tag``; the architecture comes first and the
weights tag second, so ``list_models("mc_dropout*")`` finds every variant of one architecture.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from zoo.errors import (
    DuplicateModelError,
    InvalidInputError,
    ModelConfigError,
    UnknownModelError,
)
from zoo.text import shown

if TYPE_CHECKING:
    from zoo.models.base import ZooModel

Entrypoint = TypeVar("Entrypoint", bound=Callable[..., "ZooModel"])

_ARCHITECTURE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_entrypoints: dict[str, Callable[..., ZooModel]] = {}


def register_model(entrypoint: Entrypoint) -> Entrypoint:
    """Register a function that builds a model, under the function's own name.

    Use it as a decorator. The name must be a lower-case identifier (no ``.``, which separates
    the weights tag) and must not be taken yet: registering twice is an error, never an
    overwrite.

    The model is first built on the meta device when a folder is loaded or described, so that
    a config cannot make the zoo allocate before its weights are checked. A constructor that
    bounds its own sizes and reads no tensor values builds there; one that reads values is
    built on the CPU instead.
    """
    _import_builtin_models()  # so that a clash with a built-in name is caught here, not later
    name = entrypoint.__name__
    if not _ARCHITECTURE_NAME.fullmatch(name):
        raise ValueError(f"model name {name!r} must be a lower-case identifier like 'my_lenet'")
    if name in _entrypoints:
        raise DuplicateModelError(f"a model named {name!r} is already registered")
    _entrypoints[name] = entrypoint
    return entrypoint


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Return the sorted names that match an fnmatch ``pattern`` such as ``"*lenet"``.

    By default these are architecture names; with ``pretrained=True`` they are the names of
    the shipped weights instead, "architecture.tag" (see `zoo.weights`).
    """
    if not isinstance(pattern, str):
        raise InvalidInputError(
            f"pattern must be a string such as '*lenet', not {type(pattern).__name__}"
        )
    if pretrained:
        from zoo.weights import list_weights

        return list_weights(pattern)
    _import_builtin_models()
    return sorted(name for name in _entrypoints if fnmatch.fnmatchcase(name, pattern))


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
    if not isinstance(name, str):
        raise InvalidInputError(
            f"a model is named by a string such as 'lenet', not {type(name).__name__}"
        )
    architecture, dot, tag = name.partition(".")
    if dot and architecture in list_models():
        if "weights" in kwargs:
            raise ModelConfigError(f"{name!r} names its weights already; drop weights=")
        return model_entrypoint(architecture)(weights=tag, **kwargs)
    return model_entrypoint(name)(**kwargs)


def model_entrypoint(name: str) -> Callable[..., ZooModel]:
    """Return the function registered as ``name``, or raise `UnknownModelError`."""
    _import_builtin_models()
    entrypoint = _entrypoints.get(name) if isinstance(name, str) else None
    if entrypoint is None:
        known = ", ".join(list_models()) or "none"
        raise UnknownModelError(f"unknown model {shown(name)}; known models: {known}")
    return entrypoint


def architecture_summary(name: str) -> str:
    """The first line of the architecture's docstring, without its full stop."""
    return (inspect.getdoc(model_entrypoint(name)) or "").partition("\n")[0].rstrip(".")


def _import_builtin_models() -> None:
    """Register the built-in architectures; the import runs their decorators once."""
    importlib.import_module("zoo.models")
