"""A small Hugging Face Hub look-alike, for tests: stdlib HTTP on 127.0.0.1, model repos only.

The real, unmodified ``huggingface_hub`` client (checked against 2.4.0, which speaks httpx2) works
against it end to end: ``HfApi.create_repo``, ``create_branch``, ``upload_folder`` /
``create_commit``, ``model_info`` / ``repo_info``, ``list_repo_files`` / ``list_repo_tree``,
``hf_hub_download`` and ``snapshot_download``.

What it emulates
----------------
* Git-like storage: every repo has branches pointing at commits; a commit maps paths to blobs
  named by their git blob sha1. ``create_repo`` makes an "initial commit" holding a
  ``.gitattributes`` file, as the Hub does, so that file shows up in listings and snapshots.
* ``POST /api/repos/create`` (409 when the repo exists), ``POST /api/models/{id}/branch/{name}``
  (409 when it exists; starts at ``startingPoint`` or the head of ``main``),
  ``POST /api/validate-yaml`` (never complains), ``POST /api/models/{id}/preupload/{rev}`` (every
  file is "regular", so its bytes come base64 inline in the commit; ``oid`` of the file already
  there lets the client skip unchanged files), ``POST /api/models/{id}/commit/{branch}`` (NDJSON:
  header, ``file``, ``deletedFile``, ``deletedFolder``; ``parentCommit`` is checked, 412 when
  stale), ``GET /api/models/{id}[/revision/{rev}]``, ``GET /api/models/{id}/tree/{rev}[/{path}]``,
  ``GET /api/whoami-v2``, and ``HEAD``/``GET /{id}/resolve/{rev}/{path}`` with ``ETag`` (the quoted
  git blob sha1), ``X-Repo-Commit``, ``Content-Length``, ``Accept-Ranges`` and single ``Range``s.
* Errors as the Hub sends them: ``X-Error-Code`` ``RepoNotFound`` / ``RevisionNotFound`` /
  ``EntryNotFound`` plus ``X-Error-Message`` and a JSON ``{"error": ...}`` body. An unknown or
  private repo is answered 401 without a valid token and 404 with one, both ``RepoNotFound``, so
  the client raises ``RepositoryNotFoundError`` and cannot tell "private" from "missing". An
  ``Authorization`` header with an unknown token gets 401 "Invalid credentials in Authorization
  header" everywhere (the client raises a plain ``HfHubHTTPError``). A write without a token
  (create repo, branch, preupload, commit) gets 401 "Invalid username or password." with no error
  code: a plain ``HfHubHTTPError``. A missing file's 404 carries ``X-Repo-Commit``, so the client
  caches the miss under ``.no_exist/<commit>/``.
* ``revision`` may be a branch name or a full 40-hex commit sha, URL-encoded or not.
* A bare repo name (no ``org/``) in a URL, or ``create_repo("name")``, means the token's user.
* For tests: ``requests`` (every request received, body included), ``commits``, ``files``,
  ``branches``, ``repo_exists``, ``is_private``, ``seed`` (commit files without the client),
  ``corrupt``, ``set_down``, ``reset``, and ``server_errors`` (tracebacks of answers that went 500).
* Every request body is read fully (``Content-Length`` or chunked) before anything is decided,
  so keep-alive connections survive rejected requests.

What it does not
----------------
LFS and Xet (it never sends ``X-Xet-*`` or ``X-Linked-*`` headers and never answers "lfs", so
the client takes neither path), datasets and Spaces, tags, pull requests (``create_pr`` is a
400), pagination, ``expand``, gating, organisations and permissions (any valid token may write
to and read from any repo), and redirects (everything is served by ``/resolve`` directly).
``GET /api/agent-harnesses`` -- asked once per process by the client's user-agent builder --
gets a 404, which the client ignores (answering it would make the client cache the registry
under ``HF_HOME``).

Observed client behaviour (huggingface_hub 2.4.0), pinned by ``tests/test_hub_server.py``
--------------------------------------------------------------------------------------------
* Pointing the client here: ``constants.ENDPOINT`` and ``constants.HUGGINGFACE_CO_URL_TEMPLATE``
  are read at call time by ``hf_hub_download``, ``snapshot_download`` and by ``HfApi()`` when it
  is constructed, so patching both (see :func:`point_client_at`) suffices. The module-level
  functions (``huggingface_hub.create_repo``, ``model_info``, ``upload_folder``...) are bound to
  an ``HfApi`` built at import time and keep the endpoint of that moment: use ``HfApi()`` or
  ``HfApi(endpoint=url)``. ``hf_hub_download(endpoint=url)`` and
  ``snapshot_download(endpoint=url)`` work too, but only while ``HUGGINGFACE_CO_URL_TEMPLATE``
  still starts with ``constants.ENDPOINT``.
* ``HF_HUB_OFFLINE`` is read once, at import, into ``constants.HF_HUB_OFFLINE``;
  ``constants.is_offline_mode()`` reads that attribute. Setting the environment variable later
  changes nothing: patch ``huggingface_hub.constants.HF_HUB_OFFLINE``. When it is true, no request
  is made; a cached file is returned, an uncached one raises ``LocalEntryNotFoundError``.
* ``local_files_only=True`` returns the cached file without a request, or raises
  ``LocalEntryNotFoundError``.
* Server down (connection refused, ``httpx2.ConnectError``), see :meth:`HubServer.set_down`:
  - file cached, ``revision`` a branch: the HEAD fails, the client reads ``refs/<branch>`` and
    returns the cached file, silently.
  - file cached, ``revision`` a commit sha: returned before any request is made.
  - nothing cached (branch or sha): ``LocalEntryNotFoundError`` -- but only after retrying the
    HEAD with backoff: 6 attempts, ``time.sleep`` of 1, 2, 4, 8 and 8 seconds (23 s in all).
    ``LocalEntryNotFoundError`` subclasses both ``FileNotFoundError`` and ``EntryNotFoundError``.
  - ``snapshot_download``: returns the cached snapshot folder of the branch's cached commit
    (no retry), else ``LocalEntryNotFoundError`` at once.
  - ``HfApi`` calls raise the bare ``httpx2.ConnectError`` (not an ``OSError``, not an
    ``HfHubHTTPError``): ``create_repo`` and ``model_info`` at once; ``list_repo_files`` after
    the same 23 s of backoff; ``upload_folder`` at once if the folder holds a ``README.md``
    (``/api/validate-yaml`` is asked first, without retries), else after 23 s of backoff on
    ``preupload``.
* A private repo read without a token: ``RepositoryNotFoundError`` ("401 Client Error. ...
  Repository Not Found for url: ... If you are trying to access a private or gated repo, make sure
  you are authenticated"). If the file is cached, ``hf_hub_download`` returns it instead.
* :meth:`HubServer.corrupt` swaps a blob's bytes but keeps its name, so the ``ETag`` and tree
  ``oid`` still announce the old git sha1 (storage corruption, as opposed to a new commit). The
  client does not check regular files against the ``ETag``: it downloads the corrupted bytes into
  ``blobs/<old sha1>`` without complaint; only a caller's own checksum catches it. A cache that
  already holds that blob keeps serving the good copy.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import itertools
import json
import re
import socket
import socketserver
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_BRANCH = "main"
GITATTRIBUTES = (
    b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
)
INVALID_TOKEN_MESSAGE = "Invalid credentials in Authorization header"
NO_TOKEN_MESSAGE = "Invalid username or password."
_REPO_ACTIONS = {"revision", "tree", "branch", "preupload", "commit"}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def git_blob_sha1(data: bytes) -> str:
    """The git object id of ``data`` as a blob: what the Hub sends as a regular file's ETag."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


class HubError(Exception):
    """An error answer: status, message, and the Hub's ``X-Error-Code`` when it has one."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = dict(headers or {})
        self.body = {"error": message, **(body or {})}


def _repo_not_found(user: str | None) -> HubError:
    return HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")


def _revision_not_found(revision: str) -> HubError:
    return HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


@dataclass
class _Commit:
    sha: str
    parent: str | None
    summary: str
    files: dict[str, str]
    date: str = field(default_factory=_now)


@dataclass
class _Repo:
    repo_id: str
    private: bool
    created_at: str = field(default_factory=_now)
    blobs: dict[str, bytes] = field(default_factory=dict)
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> _Commit:
        commit = self.commits.get(self.branches.get(revision, revision))
        if commit is None:
            raise _revision_not_found(revision)
        return commit

    def history(self, branch: str) -> list[str]:
        shas, sha = [], self.branches.get(branch)
        if sha is None:
            raise KeyError(f"{self.repo_id} has no branch {branch!r}")
        while sha is not None:
            shas.append(sha)
            sha = self.commits[sha].parent
        return shas[::-1]


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    user: str | None = None

    @property
    def segments(self) -> list[str]:
        return [unquote(part) for part in urlsplit(self.path).path.strip("/").split("/")]

    def query(self, name: str) -> str | None:
        values = parse_qs(urlsplit(self.path).query).get(name)
        return values[0] if values else None

    def flag(self, name: str) -> bool:
        return (self.query(name) or "").lower() in {"1", "true"}

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as error:
            raise HubError(400, f"Invalid JSON body: {error}") from error


@dataclass
class _Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, value: Any, status: int = 200) -> _Response:
        body = json.dumps(value).encode()
        return cls(status, body, {"Content-Type": "application/json"})


class HubServer:
    """The fake Hub; ``with HubServer(tokens={"hf_x": "alice"}) as hub: ... hub.url ...``.

    ``tokens`` maps each valid token to its user name. All state sits behind one lock.
    """

    def __init__(self, tokens: Mapping[str, str] | None = None, host: str = "127.0.0.1") -> None:
        self.tokens = dict(tokens or {})
        self.server_errors: list[str] = []
        self._host, self._port = host, 0
        self._lock = threading.RLock()
        self._repos: dict[str, _Repo] = {}
        self._requests: list[RecordedRequest] = []
        self._counter = itertools.count()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("the server has not been started")
        return f"http://{self._host}:{self._port}"

    def start(self) -> HubServer:
        if self._port:
            raise RuntimeError("the server is already started")
        self._listen()
        return self

    def stop(self) -> None:
        self._close_listener()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def is_down(self) -> bool:
        return self._httpd is None

    def set_down(self, down: bool) -> None:
        """Take the server off the network (``True``) or back on it, at the same address.

        Down means the listening socket is closed and every open connection is shut, so the
        client gets a real ``httpx2.ConnectError`` (connection refused), not an HTTP status.
        """
        if not self._port:
            raise RuntimeError("the server has not been started")
        if down:
            self._close_listener()
        elif self._httpd is None:
            self._listen()

    def reset(self) -> None:
        """Forget every repo and recorded request, and come back up if down."""
        with self._lock:
            self._repos.clear()
            self._requests.clear()
            self.server_errors.clear()
        self.set_down(False)

    def _listen(self) -> None:
        httpd = _HTTPServer((self._host, self._port), _Handler, self)
        self._port = httpd.server_address[1]
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        thread.start()
        self._httpd, self._thread = httpd, thread

    def _close_listener(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.drop_connections()
        httpd.server_close()
        thread.join()

    # ------------------------------------------------------------------ test helpers

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def repo_exists(self, repo_id: str) -> bool:
        with self._lock:
            return repo_id in self._repos

    def is_private(self, repo_id: str) -> bool:
        with self._lock:
            return self._repos[repo_id].private

    def branches(self, repo_id: str) -> dict[str, str]:
        """Branch name -> head commit sha."""
        with self._lock:
            return dict(self._repos[repo_id].branches)

    def commits(self, repo_id: str, branch: str = DEFAULT_BRANCH) -> list[str]:
        """The shas of ``branch``'s history, oldest first (the repo's initial commit first)."""
        with self._lock:
            return self._repos[repo_id].history(branch)

    def files(self, repo_id: str, revision: str = DEFAULT_BRANCH) -> dict[str, bytes]:
        """Path -> stored bytes at ``revision`` (a branch or a commit sha)."""
        with self._lock:
            repo = self._repos[repo_id]
            return {path: repo.blobs[oid] for path, oid in repo.resolve(revision).files.items()}

    def seed(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        *,
        private: bool = False,
        branch: str = DEFAULT_BRANCH,
        message: str = "Seed files",
    ) -> str:
        """Commit ``files`` to ``branch``, creating repo and branch as needed; return the sha."""
        with self._lock:
            repo = self._repos.get(repo_id) or self._create_repo(repo_id, private)
            if branch not in repo.branches:
                repo.branches[branch] = repo.branches[DEFAULT_BRANCH]
            head = repo.resolve(branch)
            return self._commit(repo, branch, message, {**head.files, **self._store(repo, files)})

    def corrupt(
        self,
        repo_id: str,
        path: str,
        data: bytes | None = None,
        revision: str = DEFAULT_BRANCH,
    ) -> bytes:
        """Overwrite the stored bytes of ``path`` at ``revision`` without a new commit.

        Every commit sharing that blob sees the new bytes; the blob keeps its name, so the ETag
        and the tree's ``oid`` still announce the old sha1. ``data`` defaults to the old bytes
        with every bit flipped (same length). Returns the bytes now served.
        """
        with self._lock:
            repo = self._repos[repo_id]
            oid = repo.resolve(revision).files[path]
            if data is None:
                data = bytes(byte ^ 0xFF for byte in repo.blobs[oid]) or b"\x00"
            repo.blobs[oid] = data
            return data

    # ------------------------------------------------------------------ storage

    def _create_repo(self, repo_id: str, private: bool) -> _Repo:
        repo = _Repo(repo_id=repo_id, private=private)
        self._repos[repo_id] = repo
        files = self._store(repo, {".gitattributes": GITATTRIBUTES})
        self._commit(repo, DEFAULT_BRANCH, "initial commit", files)
        return repo

    @staticmethod
    def _store(repo: _Repo, files: Mapping[str, bytes]) -> dict[str, str]:
        oids = {}
        for path, data in files.items():
            oids[path] = git_blob_sha1(data)
            repo.blobs.setdefault(oids[path], bytes(data))
        return oids

    def _commit(self, repo: _Repo, branch: str, summary: str, files: dict[str, str]) -> str:
        """Add a commit of ``files`` on top of ``branch`` (a new branch: a root commit)."""
        parent = repo.branches.get(branch)
        identity = json.dumps([next(self._counter), repo.repo_id, parent, summary, sorted(files)])
        sha = hashlib.sha1(identity.encode()).hexdigest()
        repo.commits[sha] = _Commit(sha, parent, summary, dict(files))
        repo.branches[branch] = sha
        return sha

    # ------------------------------------------------------------------ HTTP

    def _respond(self, request: _Request) -> _Response:
        with self._lock:
            self._requests.append(
                RecordedRequest(request.method, request.path, request.headers, request.body)
            )
            try:
                request.user = self._authenticate(request)
                return self._route(request)
            except HubError as error:
                return _error_response(error)
            except Exception:
                self.server_errors.append(traceback.format_exc())
                return _error_response(HubError(500, "Internal error in the test Hub server"))

    def _authenticate(self, request: _Request) -> str | None:
        authorization = request.headers.get("authorization")
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.tokens:
            raise HubError(401, INVALID_TOKEN_MESSAGE)
        return self.tokens[token.strip()]

    def _route(self, request: _Request) -> _Response:
        segments = request.segments
        if segments[0] == "api":
            return self._route_api(request, segments[1:])
        if "resolve" in segments[1:3]:
            return self._resolve_file(request, segments)
        raise HubError(404, "Not found")

    def _route_api(self, request: _Request, segments: list[str]) -> _Response:
        plain_routes: dict[tuple[str, str], Callable[[_Request], _Response]] = {
            ("GET", "whoami-v2"): self._whoami,
            ("POST", "repos/create"): self._create_repo_route,
            ("POST", "validate-yaml"): lambda _: _Response.of_json({"errors": [], "warnings": []}),
        }
        handler = plain_routes.get((request.method, "/".join(segments)))
        if handler is not None:
            return handler(request)
        if segments[0] in {"datasets", "spaces", "kernels"}:
            raise HubError(404, "This test server only serves model repos", "RepoNotFound")
        if segments[0] != "models" or len(segments) < 2:
            raise HubError(404, "Not found")
        repo_id, rest = self._split_repo_id(segments[1:], request.user)
        return self._route_repo(request, repo_id, rest)

    def _split_repo_id(self, segments: list[str], user: str | None) -> tuple[str, list[str]]:
        if len(segments) >= 2 and f"{segments[0]}/{segments[1]}" in self._repos:
            return f"{segments[0]}/{segments[1]}", segments[2:]
        if len(segments) == 1 or segments[1] in _REPO_ACTIONS:
            return f"{user}/{segments[0]}", segments[1:]
        return f"{segments[0]}/{segments[1]}", segments[2:]

    def _route_repo(self, request: _Request, repo_id: str, rest: list[str]) -> _Response:
        action, arguments = (rest[0], rest[1:]) if rest else (None, [])
        routes: dict[tuple[str, str | None], Callable[..., _Response]] = {
            ("GET", None): lambda: self._model_info(request, repo_id, DEFAULT_BRANCH),
            ("GET", "revision"): lambda: self._model_info(request, repo_id, "/".join(arguments)),
            ("GET", "tree"): lambda: self._tree(request, repo_id, arguments),
            ("POST", "branch"): lambda: self._create_branch(request, repo_id, "/".join(arguments)),
            ("POST", "preupload"): lambda: self._preupload(request, repo_id, "/".join(arguments)),
            ("POST", "commit"): lambda: self._commit_route(request, repo_id, "/".join(arguments)),
        }
        handler = routes.get((request.method, action))
        if handler is None:
            raise HubError(404, "Not found")
        return handler()

    def _readable_repo(self, request: _Request, repo_id: str) -> _Repo:
        repo = self._repos.get(repo_id)
        if repo is None or (repo.private and request.user is None):
            raise _repo_not_found(request.user)
        return repo

    def _writable_repo(self, request: _Request, repo_id: str) -> _Repo:
        _require_user(request)
        repo = self._repos.get(repo_id)
        if repo is None:
            raise _repo_not_found(request.user)
        return repo

    def _whoami(self, request: _Request) -> _Response:
        user = _require_user(request)
        access_token = {"displayName": "test token", "role": "write"}
        return _Response.of_json(
            {
                "type": "user",
                "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": access_token},
            }
        )

    def _create_repo_route(self, request: _Request) -> _Response:
        user = _require_user(request)
        payload = request.json()
        if payload.get("type") not in (None, "model"):
            raise HubError(400, "This test server only serves model repos")
        repo_id = f"{payload.get('organization') or user}/{payload['name']}"
        url = f"{self.url}/{repo_id}"
        if repo_id in self._repos:
            # The client reads "url" from this 409 when called with exist_ok=True.
            raise HubError(409, "You already created this model repo", body={"url": url})
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self._create_repo(repo_id, private)
        return _Response.of_json({"url": url, "name": repo_id, "id": repo_id})

    def _create_branch(self, request: _Request, repo_id: str, branch: str) -> _Response:
        repo = self._writable_repo(request, repo_id)
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        start = request.json().get("startingPoint") or DEFAULT_BRANCH
        repo.branches[branch] = repo.resolve(start).sha
        return _Response.of_json({})

    def _preupload(self, request: _Request, repo_id: str, revision: str) -> _Response:
        repo = self._writable_repo(request, repo_id)
        _reject_pull_requests(request)
        head = repo.resolve(revision)
        answers = [
            {
                "path": item["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": head.files.get(item["path"]),
            }
            for item in request.json().get("files", [])
        ]
        return _Response.of_json({"files": answers, "commitOid": head.sha})

    def _commit_route(self, request: _Request, repo_id: str, branch: str) -> _Response:
        repo = self._writable_repo(request, repo_id)
        _reject_pull_requests(request)
        if branch not in repo.branches:
            raise _revision_not_found(branch)
        header, operations = _parse_ndjson_commit(request.body)
        head = repo.resolve(branch)
        parent = header.get("parentCommit")
        if parent and not head.sha.startswith(parent):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for key, value in operations:
            self._apply(repo, files, key, value)
        sha = self._commit(repo, branch, header.get("summary", ""), files)
        return _Response.of_json(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self.url}/{repo_id}/commit/{sha}",
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    def _apply(self, repo: _Repo, files: dict[str, str], key: str, value: dict) -> None:
        path = value.get("path", "")
        if key == "file":
            files.update(self._store(repo, {path: _decode_content(value)}))
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            doomed = [name for name in files if name.startswith(path.rstrip("/") + "/")]
            if not doomed:
                raise HubError(
                    404, f"A folder with this name doesn't exist: {path}", "EntryNotFound"
                )
            for name in doomed:
                del files[name]
        else:
            raise HubError(400, f"Unsupported commit operation {key!r} (no LFS here)")

    def _model_info(self, request: _Request, repo_id: str, revision: str) -> _Response:
        repo = self._readable_repo(request, repo_id)
        commit = repo.resolve(revision)
        with_blobs = request.flag("blobs")
        siblings = []
        for path, oid in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=len(repo.blobs[oid]), blobId=oid)
            siblings.append(sibling)
        return _Response.of_json(
            {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "modelId": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.sha,
                "lastModified": commit.date,
                "createdAt": repo.created_at,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "spaces": [],
                "usedStorage": sum(len(data) for data in repo.blobs.values()),
            }
        )

    def _tree(self, request: _Request, repo_id: str, arguments: list[str]) -> _Response:
        repo = self._readable_repo(request, repo_id)
        if not arguments:
            raise HubError(404, "Not found")
        commit = repo.resolve(arguments[0])
        folder = "/".join(arguments[1:]).strip("/")
        entries = list(_tree_entries(repo, commit, folder, recursive=request.flag("recursive")))
        if folder and not entries:
            raise HubError(404, f"{folder} does not exist at {commit.sha}", "EntryNotFound")
        return _Response.of_json(entries)

    def _resolve_file(self, request: _Request, segments: list[str]) -> _Response:
        if request.method not in {"GET", "HEAD"}:
            raise HubError(405, "Method not allowed")
        at = segments.index("resolve", 1)
        owner = [request.user] if at == 1 else []
        repo = self._readable_repo(request, "/".join(owner + segments[:at]))
        if len(segments) < at + 3:
            raise HubError(404, "Not found")
        commit = repo.resolve(segments[at + 1])
        path = "/".join(segments[at + 2 :])
        if path not in commit.files:
            message = f"{path} does not exist at {commit.sha}"
            raise HubError(404, message, "EntryNotFound", {"X-Repo-Commit": commit.sha})
        oid = commit.files[path]
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{oid}"',
            "X-Repo-Commit": commit.sha,
        }
        return _ranged(repo.blobs[oid], request.headers.get("range"), headers)


# ---------------------------------------------------------------------- helpers


def _require_user(request: _Request) -> str:
    if request.user is None:
        raise HubError(401, NO_TOKEN_MESSAGE)
    return request.user


def _reject_pull_requests(request: _Request) -> None:
    if request.flag("create_pr"):
        raise HubError(400, "This test server does not support pull requests")


def _parse_ndjson_commit(body: bytes) -> tuple[dict, list[tuple[str, dict]]]:
    try:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    except ValueError as error:
        raise HubError(400, f"Invalid NDJSON commit payload: {error}") from error
    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "The commit payload must start with a header line")
    return lines[0]["value"], [(line["key"], line["value"]) for line in lines[1:]]


def _decode_content(value: dict) -> bytes:
    encoding = value.get("encoding", "utf-8")
    content = value.get("content", "")
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except binascii.Error as error:
            raise HubError(400, f"Invalid base64 content for {value.get('path')}") from error
    return content.encode()


def _tree_entries(repo: _Repo, commit: _Commit, folder: str, *, recursive: bool) -> Iterator[dict]:
    prefix = f"{folder}/" if folder else ""
    folders: set[str] = set()
    for path, oid in sorted(commit.files.items()):
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        depth = len(parts) if recursive else 1
        for level in range(1, min(depth, len(parts) - 1) + 1):
            folders.add(prefix + "/".join(parts[:level]))
        if recursive or len(parts) == 1:
            yield {"type": "file", "oid": oid, "size": len(repo.blobs[oid]), "path": path}
    for name in sorted(folders):
        tree_id = hashlib.sha1(f"{commit.sha}:{name}".encode()).hexdigest()
        yield {"type": "directory", "oid": tree_id, "size": 0, "path": name}


def _ranged(data: bytes, range_header: str | None, headers: dict[str, str]) -> _Response:
    match = _RANGE.fullmatch((range_header or "").strip())
    if match is None or match.groups() == ("", ""):
        return _Response(200, data, headers)
    first, last = match.groups()
    size = len(data)
    if first:
        start, end = int(first), min(int(last) if last else size - 1, size - 1)
    else:
        start, end = max(size - int(last), 0), size - 1
    if start >= size or start > end:
        raise HubError(
            416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"}
        )
    headers = {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}
    return _Response(206, data[start : end + 1], headers)


def _error_response(error: HubError) -> _Response:
    response = _Response.of_json(error.body, error.status)
    response.headers["X-Error-Message"] = error.message
    if error.code is not None:
        response.headers["X-Error-Code"] = error.code
    response.headers.update(error.headers)
    return response


class _HTTPServer(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server that knows its open connections, so they can be cut at once."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, hub: HubServer) -> None:
        self.hub = hub
        self.connections: set[socket.socket] = set()
        self._connections_changed = threading.Condition()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn: a reverse DNS lookup, not needed here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_changed:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self._connections_changed:
            self.connections.discard(request)
            self._connections_changed.notify_all()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A connection cut by set_down or by the client is no server error.
        if not isinstance(sys.exc_info()[1], OSError):
            self.hub.server_errors.append(traceback.format_exc())

    def drop_connections(self, timeout: float = 5.0) -> None:
        """Cut every open connection, and wait until their handler threads have let go."""
        with self._connections_changed:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self._connections_changed.wait_for(lambda: not self.connections, timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stall
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = _Request(self.command, self.path, headers, self._read_body())
        self._write(self.server.hub._respond(request))

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _read_chunked_body(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _write(self, response: _Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


def point_client_at(monkeypatch: Any, url: str) -> None:
    """Point huggingface_hub at ``url`` for one test (``monkeypatch`` is pytest's fixture).

    Patches the two endpoint constants, turns offline mode off, and removes the environment
    variables that could leak a real token or endpoint into the test.
    """
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", url)
    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HUGGINGFACE_CO_STAGING"):
        monkeypatch.delenv(name, raising=False)
