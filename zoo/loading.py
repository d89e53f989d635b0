"""What a model name means, decided in one place.

`load` (and its Hugging Face-style twin `from_pretrained`) takes what a user types, in Python
or as the ``MODEL`` argument of ``zoo eval``, ``zoo info``, ``zoo predict`` and ``zoo push``,
and resolves it in this order:

1. **a registered name**: shipped weights, "architecture.tag" such as
   ``mc_dropout_lenet.mnist``, or a bare architecture name, which stands for its default
   weights. They load from the package, offline, checked against the registry's sha256
   (see `zoo.weights`).
2. **an existing folder** written by ``save_pretrained`` or ``zoo train``.
3. **"org/name" or "org/name@revision"**: a model repository on the Hugging Face Hub, at a
   branch, tag or commit (the default branch without one). Its files are downloaded into the
   Hugging Face cache once (see `zoo.hub`); weights the registry publishes there are checked
   against the registry's sha256 as well as config.json's.

Registered names come first, so a folder that happens to be called ``lenet.mnist`` cannot
change what that name means (a warning says it is there: write ``./lenet.mnist`` to load it).
Folders come before the Hub, as in transformers, so ``runs/try`` is the folder ``zoo train``
wrote even though it is shaped like a Hub id, and a local clone of a Hub repository loads from
disk. A revision, "org/name@revision" or ``revision=...``, always means the Hub.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from zoo.errors import (
    CheckpointError,
    ChecksumMismatchError,
    InvalidInputError,
    ModelConfigError,
    PretrainedWeightsError,
    UnknownModelError,
)
from zoo.factory import list_models, load_folder, load_weights
from zoo.files import expand_home, is_folder
from zoo.hub import (
    HubReference,
    Snapshot,
    check_revision,
    download,
    evict,
    parse_reference,
)
from zoo.limits import MAX_MEMBERS
from zoo.models.base import ZooModel
from zoo.models.ensemble import DeepEnsembleLeNet
from zoo.models.lenet import LeNet
from zoo.pretrained import CONFIG_NAME, WEIGHTS_NAME
from zoo.text import shown
from zoo.weights import (
    find_weights,
    list_weights,
    published_sha256,
    weights_for_tag,
)

Source = Path | str | HubReference


def load(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
) -> ZooModel:
    """Load a pretrained model, in eval mode: shipped weights, a folder or a Hub repository,
    resolved as the module docstring says. ``zoo.from_pretrained`` is this same function.

    Args:
        name_or_path: a registered name, a folder, or "org/name[@revision]".
        revision: a Hub branch, tag or commit; the same as writing "org/name@revision".
        token: for private Hub repositories; defaults to HF_TOKEN, then the saved login.
        cache_dir: the Hugging Face cache to use instead of the standard one.
        local_files_only: use only the cache, never the network (as HF_HUB_OFFLINE=1 does).

    Raises:
        UnknownModelError: none of a registered name, an existing folder, or a Hub id.
        PretrainedWeightsError: a registered architecture with no such weights.
        CheckpointError: the files do not hold a loadable model (see `zoo.pretrained`).
        ChecksumMismatchError: weights that do not hash to the sha256 pinned for them.
        HubError: the Hub repository, revision or file cannot be had (see `zoo.errors`).
        ModelConfigError: a revision that is not a branch, tag or commit name.
        InvalidInputError: ``name_or_path`` is neither a string nor a path, or is empty.
    """
    source = resolve(name_or_path, revision)
    if isinstance(source, HubReference):
        _check_hub_options(token, cache_dir)
        return _load_from_hub(source, token, cache_dir, local_files_only)
    if isinstance(source, Path):
        return load_folder(source)
    entry = find_weights(source)
    if entry is None:
        raise PretrainedWeightsError(
            f"{source!r} has no pretrained weights yet; pass a folder written by "
            f"save_pretrained, or build an untrained model with zoo.create_model({source!r})"
        )
    return load_weights(entry)


# The name Hugging Face users reach for: ``zoo.from_pretrained("org/name", revision=...)``
# downloads from the Hub, ``zoo.from_pretrained("folder")`` reads a folder; one function.
from_pretrained = load


def ensemble(
    members: Sequence[ZooModel | str | os.PathLike[str]], **options: Any
) -> DeepEnsembleLeNet:
    """A deep ensemble (`zoo.models.DeepEnsembleLeNet`) of trained LeNets: models, or names,
    folders and Hub ids, each loaded by `load` with ``options``. The members' weights are
    copied; save or push the ensemble like any model.

    Raises:
        InvalidInputError: ``members`` is not a list or tuple, or holds more than
            `zoo.limits.MAX_MEMBERS` (checked before anything is loaded).
        ModelConfigError: fewer than 2 members, a member that is not a deterministic LeNet, or
            members that differ in classes, labels or normalisation.
    """
    if not isinstance(members, (list, tuple)):
        raise InvalidInputError(
            f"an ensemble's members are a list of models or names, not {type(members).__name__}"
        )
    if len(members) > MAX_MEMBERS:
        raise InvalidInputError(
            f"an ensemble may have at most {MAX_MEMBERS} members, got {len(members):,}"
        )
    models = []
    for number, member in enumerate(members, start=1):  # each checked before the next loads
        model = member if isinstance(member, ZooModel) else load(member, **options)
        if not isinstance(model, LeNet):
            raise ModelConfigError(
                f"member {number} is a {model.architecture}; an ensemble's members must be "
                "lenet models"
            )
        models.append(model)
    return DeepEnsembleLeNet.from_members(models)


def resolve(name_or_path: str | os.PathLike[str], revision: str | None = None) -> Source:
    """What ``name_or_path`` names: a registered name (a `str`), an existing folder (a `Path`)
    or a Hub repository (a `HubReference`), in the order the module docstring gives. A
    revision, given or after "@", always means the Hub; a `Path` never does.

    Raises:
        UnknownModelError: it is none of them.
        CheckpointError: a `Path`, or a string that can only be a path, to no folder; or a
            folder that shadows a Hub id but holds no model.
        PretrainedWeightsError: "architecture.tag" where the architecture has no such weights.
        ModelConfigError: a ``revision`` for something that is not a Hub repository, two
            different revisions, nothing after "@", or a revision that is not a branch, tag
            or commit name (checked before any request; see `zoo.hub.check_revision`).
        InvalidInputError: ``name_or_path`` is neither a string nor a path, or is empty.
    """
    if revision is not None:
        check_revision(revision)
    if isinstance(name_or_path, os.PathLike):
        return _without_revision(_existing_folder(expand_home(Path(name_or_path))), revision)
    name = _check_name(name_or_path)
    if name.startswith("~"):
        return _without_revision(_existing_folder(expand_home(Path(name))), revision)
    if name in list_models() or name in list_weights():
        _warn_if_shadowed(name)
        return _without_revision(name, revision)
    reference = parse_reference(name)
    if reference is not None and (revision is not None or reference.revision is not None):
        return _with_revision(reference, revision)
    if is_folder(Path(name)):
        _check_model_folder(Path(name), reference)
        return _without_revision(Path(name), revision)
    if reference is not None:
        return reference
    if _looks_like_a_path(name):
        _existing_folder(Path(name))
    _raise_unknown(name)


def _check_name(name: object) -> str:
    """``name`` if it is text that can name a model, else `InvalidInputError` saying what is
    expected."""
    if not isinstance(name, str):
        raise InvalidInputError(
            "a model is named by a string (a registered name, a folder or org/name) or a "
            f"pathlib.Path, not {type(name).__name__}"
        )
    if not name:
        raise InvalidInputError(
            "the model name is empty: give a registered name (zoo list), a folder or org/name"
        )
    if "\0" in name:
        raise InvalidInputError(f"the model name {shown(name)} holds a NUL character")
    return name


def _check_hub_options(token: object, cache_dir: object) -> None:
    if token is not None and not isinstance(token, str):
        raise InvalidInputError(f"token must be a string, not {type(token).__name__}")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise InvalidInputError(
            f"cache_dir must be a folder's path (a string or pathlib.Path), not "
            f"{type(cache_dir).__name__}"
        )


def _warn_if_shadowed(name: str) -> None:
    if is_folder(Path(name)):
        warnings.warn(
            f"{name!r} is a registered name and also a folder here; the registered weights "
            f"are loaded: write ./{name} for the folder",
            UserWarning,
            stacklevel=4,
        )


def _check_model_folder(folder: Path, reference: HubReference | None) -> None:
    """A folder named like a Hub id is loaded instead of the Hub repository only if it holds
    a model; otherwise say why the Hub was not asked."""
    if reference is not None and not (folder / CONFIG_NAME).exists():
        raise CheckpointError(
            folder,
            f"this folder holds no {CONFIG_NAME}, so it is not a model, but it hides the Hub "
            f"repository {reference.repo_id}: write {reference.repo_id}@main for the Hub",
        )


def _existing_folder(path: Path) -> Path:
    if not is_folder(path):
        raise CheckpointError(path, "no such folder; pass a folder written by save_pretrained")
    return path


def _raise_unknown(name: str) -> NoReturn:
    if name.endswith("@") and parse_reference(name[:-1]) is not None:
        raise ModelConfigError(f"{name!r} has nothing after '@': give a branch, tag or commit")
    architecture, dot, tag = name.partition(".")
    if dot and architecture in list_models():
        weights_for_tag(architecture, tag)  # raises, naming the tags there are
    known = ", ".join(list_weights() + list_models())
    raise UnknownModelError(
        f"{shown(name)} is not a registered model, an existing folder or a Hub id (org/name); "
        f"registered: {known}"
    )


def _looks_like_a_path(name: str) -> bool:
    """A name no registry or Hub id can have: absolute, relative to "." or "~", or nested."""
    return name.startswith((".", "~", "/", "\\")) or name.count("/") > 1 or "\\" in name


def _without_revision(source: Source, revision: str | None) -> Source:
    if revision is not None:
        raise ModelConfigError(
            f"revision={revision!r} applies to Hugging Face Hub repositories only, and "
            f"{str(source)!r} is not one"
        )
    return source


def _with_revision(reference: HubReference, revision: str | None) -> HubReference:
    if reference.revision is not None:
        check_revision(reference.revision)
    if revision is None or revision == reference.revision:
        return reference
    if reference.revision is not None:
        raise ModelConfigError(
            f"{reference} names revision {reference.revision!r}, and revision={revision!r} "
            "names another; give one"
        )
    return reference.at(revision)


def _load_from_hub(
    reference: HubReference,
    token: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
) -> ZooModel:
    """Download config.json and model.safetensors from one commit and load them strictly."""
    snapshot = download(
        reference,
        [CONFIG_NAME, WEIGHTS_NAME],
        token=token,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
    )
    try:
        return load_folder(snapshot.folder, _pin(snapshot))
    except ChecksumMismatchError as error:
        raise _bad_download(snapshot, error) from None


def _bad_download(snapshot: Snapshot, error: ChecksumMismatchError) -> ChecksumMismatchError:
    """The error, naming the repository and commit; weights that fail their sha256 check are
    removed from the cache, so that the next call downloads them again."""
    detail = f"downloaded from {_described(snapshot)}: {error.detail}"
    if error.path.name == WEIGHTS_NAME:
        if evict(snapshot.folder / WEIGHTS_NAME):
            detail += "; the bad copy was removed from the cache: load again to download it anew"
        else:
            detail += "; the bad copy could not be removed from the cache: delete it"
    return ChecksumMismatchError(error.path, detail)


def _pin(snapshot: Snapshot) -> str | None:
    return published_sha256(snapshot.reference.repo_id, snapshot.commit)


def _described(snapshot: Snapshot) -> str:
    """ "org/name@commit", with the revision asked for when it was a branch or tag."""
    reference = snapshot.reference
    where = f"{reference.repo_id}@{snapshot.commit}"
    if reference.revision in (None, snapshot.commit):
        return where
    return f"{where} (revision {reference.revision!r})"
