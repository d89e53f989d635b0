"""The model registry: a table of the architectures the zoo can build, by name.

It is a plain name table. Model modules add their builders to it with `register_model` when
they are imported, and it never imports them: `zoo.factory` imports the built-in models, and
is what the rest of the zoo builds models through.

Names are ``architecture`` or ``architecture.tag``; the architecture comes first and the
weights tag second, so ``list_models("mc_dropout*")`` finds every variant of one architecture.
"""

from __future__ import annotations

import fnmatch
import inspect
import re
import typing
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
    overwrite. This is the table's own entry, for the built-in model modules; register your
    own models with `zoo.register_model`, which registers the built-in ones first, so that a
    clash with one of their names is caught at once rather than when they load.

    The model is first built on the meta device when a folder is loaded or described, so that
    a config cannot make the zoo allocate before its weights are checked. A constructor that
    bounds its own sizes and reads no tensor values builds there; one that reads values is
    built on the CPU instead.
    """
    name = entrypoint.__name__
    if not _ARCHITECTURE_NAME.fullmatch(name):
        raise ValueError(f"model name {name!r} must be a lower-case identifier like 'my_lenet'")
    if name in _entrypoints:
        raise DuplicateModelError(f"a model named {name!r} is already registered")
    _entrypoints[name] = entrypoint
    return entrypoint


def registered_names(pattern: str = "*") -> list[str]:
    """The sorted registered architecture names that match an fnmatch ``pattern``."""
    if not isinstance(pattern, str):
        raise InvalidInputError(
            f"pattern must be a string such as '*lenet', not {type(pattern).__name__}"
        )
    return sorted(name for name in _entrypoints if fnmatch.fnmatchcase(name, pattern))


def build_registered(name: str, **kwargs: Any) -> ZooModel:
    """Build the model registered as ``name`` (an architecture, or "architecture.tag" for
    its weights with that tag), passing ``kwargs`` to its builder; see `zoo.create_model`."""
    if not isinstance(name, str):
        raise InvalidInputError(
            f"a model is named by a string such as 'lenet', not {type(name).__name__}"
        )
    architecture, dot, tag = name.partition(".")
    if dot and architecture in _entrypoints:
        if "weights" in kwargs:
            raise ModelConfigError(f"{name!r} names its weights already; drop weights=")
        return model_entrypoint(architecture)(weights=tag, **kwargs)
    return model_entrypoint(name)(**kwargs)


def model_entrypoint(name: str) -> Callable[..., ZooModel]:
    """Return the function registered as ``name``, or raise `UnknownModelError`."""
    entrypoint = _entrypoints.get(name) if isinstance(name, str) else None
    if entrypoint is None:
        known = (
            ", ".join(registered_names())
            or "none (import zoo.factory, which registers the built-in models)"
        )
        raise UnknownModelError(f"unknown model {shown(name)}; known models: {known}")
    return entrypoint


def registered_class(name: str) -> type[ZooModel] | None:
    """The model class the builder registered as ``name`` returns, as its return annotation
    names it (the built-in builders all do); None when it does not. The class holds what
    the architecture is (``about``, ``references``, ``stochastic``) for its model card."""
    try:
        returned = typing.get_type_hints(model_entrypoint(name)).get("return")
    except (UnknownModelError, NameError, TypeError, AttributeError, SyntaxError):
        return None  # not registered, or an annotation that does not resolve
    if not isinstance(returned, type) or getattr(returned, "architecture", None) != name:
        return None  # a base class, or a subclass that did not name its own architecture
    return returned


def architecture_summary(name: str) -> str:
    """The first line of the architecture's docstring, without its full stop."""
    return (inspect.getdoc(model_entrypoint(name)) or "").partition("\n")[0].rstrip(".")
