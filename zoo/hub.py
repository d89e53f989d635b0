"""The Hugging Face Hub, through the unmodified huggingface_hub client.

Downloads go through ``hf_hub_download`` into the standard Hugging Face cache, so they honour
``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and ``HF_TOKEN`` (or the
token saved by ``hf auth login``) exactly as other Hub libraries do. The files of one model are
always taken from one commit: the first download resolves the revision (a branch, tag or
commit) to a commit, and the others ask for that commit, so a push in between cannot pair a
new config with old weights.

Uploads create the repository if needed, then send a whole folder in one commit.

Every failure of the client becomes a `zoo.HubError` subclass that names the repository and the
revision and says what to do. Tokens are handed to the client and never appear in a message.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import socket
import time
import typing
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from zoo._version import __version__
from zoo.errors import (
    HubAuthenticationError,
    HubConnectionError,
    HubError,
    HubFileNotFoundError,
    HubOfflineError,
    HubRepositoryNotFoundError,
    HubRevisionNotFoundError,
    ModelConfigError,
)
from zoo.limits import HUB_CONNECT_TIMEOUT_S, MAX_REVISION_LENGTH
from zoo.text import first_line, first_unprintable, shown

DEFAULT_BRANCH = "main"
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_BRANCH = re.compile(r"[A-Za-z0-9][\w.\-/]*")
# What git's check-ref-format refuses in a ref name, besides control characters: space and
# ~ ^ : ? * [ \ anywhere, "..", "@{" and "//", a component that starts with "." or ends with
# ".lock", and a name that starts or ends with "/" or ends with ".". A leading "-" would read as
# an option.
_REF_CHARACTERS = re.compile(r"[ ~^:?*\[\\]|\.\.|@\{|//")
_REF_COMPONENT = re.compile(r"(?:^|/)\.|\.lock(?:/|$)")
_REFERENCE = re.compile(r"(?P<repo_id>[^/@\s]+/[^/@\s]+)(?:@(?P<revision>\S+))?")
_TOKEN_SOURCES = "pass token=... (zoo push --token), set HF_TOKEN or run `hf auth login`"


@dataclass(frozen=True)
class HubReference:
    """A model on the Hub: ``repo_id`` ("org/name") at ``revision`` (None: the default branch)."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo_id if self.revision is None else f"{self.repo_id}@{self.revision}"

    def at(self, revision: str | None) -> HubReference:
        return HubReference(self.repo_id, revision)


@dataclass(frozen=True)
class Snapshot:
    """Files of one commit, downloaded into the Hugging Face cache."""

    reference: HubReference
    commit: str
    folder: Path


@dataclass(frozen=True)
class PushResult:
    """Where a push landed: the repository, the branch, the commit and its web page.

    ``changed`` is False when the branch already held exactly these files: the Hub makes no
    empty commit, and ``commit`` is the branch's head as it was.
    """

    repo_id: str
    revision: str
    commit: str
    url: str
    changed: bool = True

    def __str__(self) -> str:
        where = f"{self.repo_id}@{self.commit} (branch {self.revision})"
        if not self.changed:
            return f"nothing to push: {where} already holds these files\n{self.url}"
        return f"pushed {where}\n{self.url}"


def parse_reference(text: str) -> HubReference | None:
    """``"org/name"`` or ``"org/name@revision"`` as a `HubReference`; None if ``text`` is not
    shaped like a Hub repository id."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(text, str):
        return None
    match = _REFERENCE.fullmatch(text)
    if match is None:
        return None
    try:
        validate_repo_id(match["repo_id"])
    except HFValidationError:
        return None
    return HubReference(match["repo_id"], match["revision"])


def check_revision(revision: object) -> str:
    """Return ``revision`` if it can name a Hub branch, tag or commit, else raise
    `ModelConfigError` naming it.

    It is checked before any request: the client writes each branch or tag it resolves into
    the cache under that name, so a name that climbs out (``../../x``) would write elsewhere.
    A revision is a 40-hex commit, or a ref name by git's rules (see `_REF_CHARACTERS`), at
    most `MAX_REVISION_LENGTH` characters, without control characters and not starting with
    "-".
    """
    if not isinstance(revision, str):
        raise ModelConfigError(
            f"revision must be a string (a branch, tag or commit), not {type(revision).__name__}"
        )
    problem = _ref_name_problem(revision)
    if problem:
        raise ModelConfigError(
            f"revision {shown(revision)} {problem}; give a branch or tag name, or a 40-hex commit"
        )
    return revision


def _ref_name_problem(revision: str) -> str | None:
    if not revision:
        return "is empty"
    if len(revision) > MAX_REVISION_LENGTH:
        return f"is longer than {MAX_REVISION_LENGTH} characters"
    if first_unprintable(revision) is not None:
        return "holds a control character"
    if revision.startswith(("-", "/")) or revision.endswith(("/", ".")) or revision == "@":
        return "starts with '-' or '/', ends with '/' or '.', or is '@'"
    if _REF_CHARACTERS.search(revision) or _REF_COMPONENT.search(revision):
        return (
            "is not a git ref name: no '..', '//', '@{', spaces or ~ ^ : ? * [ \\, and no part "
            "starting with '.' or ending with '.lock'"
        )
    return None


def download(
    reference: HubReference,
    filenames: Sequence[str],
    *,
    optional: Sequence[str] = (),
    token: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Snapshot:
    """Download ``filenames`` and, where the repository has them, the ``optional`` files, all
    from the one commit that ``reference`` resolves to.

    Raises:
        HubError: a subclass for each way the download can fail; see `zoo.errors`.
    """
    if reference.revision is not None:
        check_revision(reference.revision)
    unreachable = None if local_files_only or _offline() else unreachable_reason()
    options = {
        "token": token,
        "cache_dir": cache_dir,
        "local_files_only": local_files_only or unreachable is not None,
        "unreachable": unreachable,
    }
    first = _download_file(reference, filenames[0], **options)
    commit = first.parent.name  # the cache keeps each commit's files in snapshots/<sha>/
    if not _COMMIT_SHA.fullmatch(commit):
        raise HubError(reference.repo_id, reference.revision, f"unexpected cache path {first}")
    pinned = reference.at(commit)
    for filename in filenames[1:]:
        _download_file(pinned, filename, shown=reference, **options)
    not_there: tuple[type[HubError], ...] = (HubFileNotFoundError, HubOfflineError)
    if unreachable:  # not in the cache, and no Hub to ask
        not_there += (HubConnectionError,)
    for filename in optional:
        with contextlib.suppress(*not_there):
            _download_file(pinned, filename, shown=reference, **options)
    return Snapshot(reference, commit, first.parent)


def unreachable_reason() -> str | None:
    """Why no TCP connection to the Hub opens within `HUB_CONNECT_TIMEOUT_S`; None when one
    does, or when the answer is not ours to find (a proxy stands in between).

    huggingface_hub retries a failed request for about 23 s before it gives up or falls back
    to its cache. A host that cannot be reached at all (no network, no such host, nothing
    listening) is told apart at once, and the download goes straight to the cache.
    """
    try:
        endpoint = urlsplit(_endpoint())
        host, port = endpoint.hostname, endpoint.port or _DEFAULT_PORTS.get(endpoint.scheme)
    except ValueError:  # a bad port in HF_ENDPOINT: the client says what is wrong with it
        return None
    if not host or not port or _proxied(endpoint.scheme, host):
        return None
    deadline = time.monotonic() + HUB_CONNECT_TIMEOUT_S
    reason = "no address"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        return f"cannot connect to {host}:{port}: {error.strerror or error}"
    for family, kind, protocol, _, address in addresses:  # IPv6 and IPv4, within one deadline
        left = deadline - time.monotonic()
        if left <= 0:
            reason = f"no answer within {HUB_CONNECT_TIMEOUT_S:g} s"
            break
        try:
            with socket.socket(family, kind, protocol) as connection:
                connection.settimeout(left)
                connection.connect(address)
            return None
        except TimeoutError:
            reason = f"no answer within {HUB_CONNECT_TIMEOUT_S:g} s"
        except OSError as error:
            reason = error.strerror or str(error) or type(error).__name__
    return f"cannot connect to {host}:{port}: {reason}"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _proxied(scheme: str, host: str) -> bool:
    """Whether the client would reach ``host`` through a proxy (HTTP(S)_PROXY, ALL_PROXY, or
    the system's settings), which then decides what can be reached."""
    proxies = urllib.request.getproxies()
    return bool(proxies.get(scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(host)


def _download_file(
    reference: HubReference,
    filename: str,
    *,
    shown: HubReference | None = None,
    token: str | None,
    cache_dir: str | Path | None,
    local_files_only: bool,
    unreachable: str | None = None,
) -> Path:
    """One file of ``reference`` in the cache; errors name ``shown``, what the user asked for.
    ``unreachable`` says why the Hub was not asked (``local_files_only`` is then True)."""
    from huggingface_hub import hf_hub_download

    context = _Context(shown or reference, token, cache_dir, local_files_only, unreachable)
    with _translate_errors(context, filename):
        path = hf_hub_download(
            reference.repo_id,
            filename,
            revision=reference.revision,
            library_name="uncertainty-zoo",
            library_version=__version__,
            token=token,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
    return Path(path)


def check_branch(revision: object) -> str | None:
    """``revision`` if it can name a new or existing branch; commits and refs/ cannot."""
    if revision is None:
        return None
    invalid = (
        not isinstance(revision, str)
        or _ref_name_problem(revision) is not None
        or not _BRANCH.fullmatch(revision)
        or revision.startswith("refs/")
        or _COMMIT_SHA.fullmatch(revision)
    )
    if invalid:
        raise ModelConfigError(
            f"--revision must name a branch (letters, digits and - _ . /), not {shown(revision)}"
        )
    return typing.cast(str, revision)


def upload_folder(
    folder: Path,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    message: str,
) -> PushResult:
    """Create ``repo_id`` if it does not exist (and the branch ``revision`` if it is new),
    then make the branch hold exactly the files of ``folder``, in one commit: files of an
    earlier push that ``folder`` lacks (an eval.json of other weights) are deleted.

    ``private`` applies when the repository is created; pushing ``private=True`` to an
    existing public repository uploads nothing and raises `HubError`, so that weights meant
    to stay private are never published by mistake.
    """
    from huggingface_hub import HfApi

    if _offline():
        raise HubOfflineError(repo_id, revision, "HF_HUB_OFFLINE is set: unset it to push")
    unreachable = unreachable_reason()
    if unreachable is not None:
        raise HubConnectionError(
            repo_id, revision, f"cannot reach the Hub at {_endpoint()} ({unreachable})"
        )
    api = HfApi(token=token, library_name="uncertainty-zoo", library_version=__version__)
    branch = revision or DEFAULT_BRANCH
    with _translate_errors(_Context(HubReference(repo_id, revision), token), None):
        api.create_repo(repo_id, private=private, exist_ok=True)
        repository = api.model_info(repo_id)
        if private and not repository.private:
            raise HubError(
                repo_id,
                revision,
                "the repository exists and is public, and --private only applies when it is "
                "created; nothing was uploaded: make it private on the Hub first",
            )
        head = repository.sha
        if branch != DEFAULT_BRANCH:
            api.create_branch(repo_id, branch=branch, exist_ok=True)
            head = api.model_info(repo_id, revision=branch).sha
        commit = api.upload_folder(
            folder_path=folder,
            repo_id=repo_id,
            revision=branch,
            commit_message=message,
            delete_patterns="*",  # never .gitattributes: the client keeps it
        )
    return PushResult(repo_id, branch, commit.oid, commit.commit_url, commit.oid != head)


def evict(path: Path) -> bool:
    """Remove a downloaded file from the cache, so that the next call downloads it again;
    False when it cannot be removed (a read-only shared cache)."""
    try:
        blob = path.resolve()
        for stale in (path, blob):
            stale.unlink(missing_ok=True)
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class _Context:
    reference: HubReference
    token: str | None
    cache_dir: str | Path | None = None
    local_files_only: bool = False
    unreachable: str | None = None  # why the Hub was not asked, if it could not be reached


@contextlib.contextmanager
def _translate_errors(context: _Context, filename: str | None) -> Iterator[None]:
    """Turn the client's exceptions into `HubError`s that say what went wrong and what to do."""
    from huggingface_hub import utils as errors  # huggingface_hub.errors is >= 0.25 only

    reference = context.reference
    try:
        yield
    except errors.GatedRepoError:
        raise _error(HubAuthenticationError, reference, _gated()) from None
    except errors.RepositoryNotFoundError:
        raise _error(HubRepositoryNotFoundError, reference, _not_found(context)) from None
    except errors.RevisionNotFoundError:
        message = f"the repository has no branch, tag or commit {reference.revision!r}"
        raise _error(HubRevisionNotFoundError, reference, message) from None
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled) as error:
        raise _unavailable(context, filename, error) from None
    except errors.EntryNotFoundError:  # after its local subclass: the file is not on the Hub
        raise _error(HubFileNotFoundError, reference, _missing(filename)) from None
    except errors.HfHubHTTPError as error:
        raise _http_error(context, error) from None
    except RuntimeError as error:  # 1.2 to 1.26 retry a failed request on a client they closed
        if "client has been closed" not in str(error):
            raise
        raise _unreachable(context, filename, error.__context__ or error) from None
    except _transport_errors() as error:  # HfApi calls let the HTTP library's errors through
        raise _unreachable(context, filename, error) from None
    except ImportError as error:  # a SOCKS proxy without its package, say
        message = f"cannot reach the Hub at {_endpoint()}: {first_line(error)}"
        raise _error(HubConnectionError, reference, message) from None
    except OSError as error:  # the cache: a folder that cannot be created, a full disk
        message = f"cannot use the Hugging Face cache at {_cache_dir(context)} ({error}); "
        message += "check HF_HOME and HF_HUB_CACHE"
        raise _error(HubError, reference, message) from None


def _unreachable(context: _Context, filename: str | None, cause: BaseException) -> HubError:
    if filename is not None:  # a download: the cache may hold something
        return _unavailable(context, filename, cause)
    message = f"cannot reach the Hub at {_endpoint()} ({first_line(cause)})"
    return _error(HubConnectionError, context.reference, message)


def _offline() -> bool:
    """Whether HF_HUB_OFFLINE is set, as huggingface_hub read it."""
    from huggingface_hub import constants

    is_offline_mode = getattr(constants, "is_offline_mode", None)  # >= 1.2.1
    return is_offline_mode() if is_offline_mode else constants.HF_HUB_OFFLINE


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection errors of the HTTP libraries that huggingface_hub versions are built on."""
    found: list[type[BaseException]] = []
    libraries = (
        ("httpx2", "TransportError"),
        ("httpx", "TransportError"),
        ("requests", "ConnectionError"),
    )
    for module, name in libraries:
        with contextlib.suppress(ImportError, AttributeError):
            found.append(getattr(importlib.import_module(module), name))
    return tuple(found)


def _error(kind: type[HubError], reference: HubReference, message: str) -> HubError:
    return kind(reference.repo_id, reference.revision, message)


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _has_token(token: str | None) -> bool:
    from huggingface_hub import get_token

    try:
        return bool(token or get_token())
    except OSError:  # an unreadable token file is no token
        return False


def _not_found(context: _Context) -> str:
    if _has_token(context.token):
        return (
            f"no such repository on {_endpoint()} (nor a local folder of that name), or it is "
            "private and the token given cannot read it; check the name"
        )
    return (
        f"no such repository on {_endpoint()} (nor a local folder of that name), or it is "
        f"private and no token was given: check the name, or {_TOKEN_SOURCES}"
    )


def _gated() -> str:
    return f"the repository is gated: accept its conditions on {_endpoint()}, then {_TOKEN_SOURCES}"


def _missing(filename: str | None) -> str:
    from zoo.pretrained import WEIGHTS_NAME

    if filename == WEIGHTS_NAME:
        return (
            f"the repository has no {WEIGHTS_NAME}; uncertainty-zoo loads safetensors weights "
            "only and never falls back to pickled (.bin, .pt) files"
        )
    return f"the repository has no file {filename!r}; is it an uncertainty-zoo model?"


def _unavailable(context: _Context, filename: str | None, cause: BaseException) -> HubError:
    """Offline, or the Hub unreachable, and the file is not in the cache."""
    reference, wanted = context.reference, filename or "the files"
    if context.unreachable is not None:
        message = (
            f"cannot download {wanted} from {_endpoint()}: the host cannot be reached at all "
            f"({context.unreachable}), and it is not in the Hugging Face cache"
        )
        if _is_cached(context):
            message += (
                "; other files of this repository are: set HF_HUB_OFFLINE=1 to load them "
                "without the network"
            )
        return _error(HubConnectionError, reference, message)
    if context.local_files_only or _offline():
        switch = "local_files_only=True" if context.local_files_only else "HF_HUB_OFFLINE is set"
        message = (
            f"{switch} and {wanted} is not in the Hugging Face cache ({_cache_dir(context)}); "
            "download it once while online"
        )
        return _error(HubOfflineError, reference, message)
    reason = cause.__cause__ or cause
    message = f"cannot download {wanted} from {_endpoint()} ({first_line(reason)})"
    if _is_cached(context):
        message += (
            "; files of this repository are in the cache: set HF_HUB_OFFLINE=1 to load them "
            "without the network"
        )
    return _error(HubConnectionError, reference, message)


def _http_error(context: _Context, error: Exception) -> HubError:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if status in (401, 403):
        if not _has_token(context.token):
            message = f"the Hub needs a token for this: {_TOKEN_SOURCES}"
        else:
            message = f"the Hub refused the token ({status}): it is invalid or lacks the rights"
        return _error(HubAuthenticationError, context.reference, message)
    kind = HubConnectionError if status is None or status >= 500 else HubError
    return _error(kind, context.reference, f"the Hub answered {status}: {first_line(error)}")


def _cache_dir(context: _Context) -> Path:
    from huggingface_hub import constants

    return Path(context.cache_dir or constants.HF_HUB_CACHE)


def _is_cached(context: _Context) -> bool:
    """Whether any snapshot of the repository is in the cache."""
    from huggingface_hub.file_download import repo_folder_name

    name = repo_folder_name(repo_id=context.reference.repo_id, repo_type="model")
    snapshots = _cache_dir(context) / name / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())
