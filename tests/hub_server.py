"""A small Hugging Face Hub look-alike for tests: stdlib HTTP on 127.0.0.1, model repos only.

The real ``huggingface_hub`` client (checked against 2.4.0) works against it end to end:
``HfApi.create_repo``, ``create_branch``, ``upload_folder`` (``delete_patterns`` included),
``model_info``, ``list_repo_files``, ``list_repo_tree``, ``hf_hub_download``,
``snapshot_download``. Repo ids are ``org/name``. Storage is git-like (branches, commits, blobs
named by their git sha1); a new repo starts with a commit holding ``.gitattributes``, as on the Hub.

Endpoints: ``POST /api/repos/create``, ``/api/validate-yaml``, ``/api/models/{id}/branch/{name}``,
``/api/models/{id}/preupload/{rev}`` (every file "regular": base64 in the commit),
``/api/models/{id}/commit/{branch}`` (NDJSON ``header``, ``file``, ``deletedFile``,
``deletedFolder``); ``GET /api/models/{id}[/revision/{rev}]``,
``/api/models/{id}/tree/{rev}[/{path}]`` (``recursive``, no pagination); ``HEAD``/``GET
/{id}/resolve/{rev}/{path}`` with ``ETag``, ``X-Repo-Commit``, ``Content-Length``, one ``Range``.
Anything else, such as the ``/api/agent-harnesses`` the client asks once per process, is a plain
404 the client ignores.
Not emulated: LFS, Xet, datasets, Spaces, tags, pull requests, gating, redirects.

Answers, and what the client raises:

* Missing repo, or private and not readable: ``RepoNotFound``, 401 without a token, 404 with one
  (``RepositoryNotFoundError``). Missing revision: ``RevisionNotFound``. Missing file:
  ``EntryNotFound`` (``RemoteEntryNotFoundError``), with ``X-Repo-Commit`` so the miss is cached.
* Unknown token: 401 everywhere; write without a token: 401 (plain ``HfHubHTTPError``).
* ``HubServer(tokens={token: user}, orgs={user: {"org-a"}})``: a user writes (create repo, branch,
  preupload, commit) and reads private repos in its own namespace and its orgs' only. A write
  elsewhere: 403 "You don't have the rights to create a model under the namespace "x"" (the
  Hub's words; "write to a model" for a write into an existing repo), a plain ``HfHubHTTPError``.
  ``orgs=None`` (the default): every valid token may write everywhere.
* A branch name git or the Hub refuses (empty, whitespace, ``..``, leading ``/`` or ``refs/``,
  trailing ``/`` or ``.lock``, a 40-hex sha), on create-branch or commit: 400 (``BadRequestError``).

Client facts callers need (huggingface_hub 2.4.0, pinned by ``tests/test_hub_server.py``):

* After :func:`point_client_at`, use ``HfApi()``: the module-level ``huggingface_hub.model_info``
  and friends keep the endpoint of import time.
* ``HF_HUB_OFFLINE`` is read at import: patch ``huggingface_hub.constants.HF_HUB_OFFLINE``.
* Server down (:meth:`HubServer.set_down`): ``hf_hub_download`` returns a cached file, else raises
  ``LocalEntryNotFoundError`` after ``time.sleep`` of 1, 2, 4, 8, 8 s (patch
  ``huggingface_hub.utils._http.time``); ``HfApi`` calls raise the bare ``httpx2.ConnectError``.
* :meth:`HubServer.corrupt` keeps the blob's name: the client downloads the bad bytes silently.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import itertools
import json
import re
import socket
import socketserver
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_BRANCH = "main"
GITATTRIBUTES = b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
INVALID_TOKEN_MESSAGE = "Invalid credentials in Authorization header"
NO_TOKEN_MESSAGE = "Invalid username or password."
_INVALID_BRANCH = re.compile(r"^$|\s|\.\.|^/|^refs/|/$|\.lock$|^[0-9a-f]{40}$")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_COMMIT_COUNTER = itertools.count()


def git_blob_sha1(data: bytes) -> str:
    """The git object id of ``data`` as a blob: what the Hub sends as a regular file's ETag."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HubError(Exception):
    """An error answer: status, message, the Hub's ``X-Error-Code`` if any, extra headers and
    extra JSON body fields."""

    status: int
    message: str
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


def _repo_not_found(user: str | None) -> HubError:
    return HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")


def _revision_not_found(revision: str) -> HubError:
    return HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def _forbidden(namespace: str, action: str) -> HubError:
    return HubError(
        403, f'You don\'t have the rights to {action} under the namespace "{namespace}"'
    )


@dataclass
class _Commit:
    sha: str
    parent: str | None
    files: dict[str, str]  # path -> blob oid


@dataclass
class _Repo:
    repo_id: str
    private: bool
    blobs: dict[str, bytes] = field(default_factory=dict)  # oid -> bytes
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit sha

    def resolve(self, revision: str) -> _Commit:
        commit = self.commits.get(self.branches.get(revision, revision))
        if commit is None:
            raise _revision_not_found(revision)
        return commit

    def store(self, files: Mapping[str, bytes]) -> dict[str, str]:
        oids = {path: git_blob_sha1(data) for path, data in files.items()}
        for path, oid in oids.items():
            self.blobs.setdefault(oid, bytes(files[path]))
        return oids

    def commit(self, branch: str, files: dict[str, str]) -> str:
        """Add a commit of ``files`` on top of ``branch``; return its sha."""
        parent = self.branches.get(branch)
        identity = [next(_COMMIT_COUNTER), self.repo_id, parent, sorted(files.items())]
        sha = hashlib.sha1(json.dumps(identity).encode()).hexdigest()
        self.commits[sha] = _Commit(sha, parent, dict(files))
        self.branches[branch] = sha
        return sha


def _new_repo(repo_id: str, private: bool) -> _Repo:
    repo = _Repo(repo_id, private)
    repo.commit(DEFAULT_BRANCH, repo.store({".gitattributes": GITATTRIBUTES}))
    return repo


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    user: str | None = None

    @property
    def segments(self) -> list[str]:
        """The URL path's segments, each unquoted (so ``%2F`` in a revision stays inside it)."""
        return [unquote(part) for part in urlsplit(self.path).path.strip("/").split("/")]

    def flag(self, name: str) -> bool:
        values = parse_qs(urlsplit(self.path).query).get(name, [""])
        return values[0].lower() in {"1", "true"}

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
        return cls(status, json.dumps(value).encode(), {"Content-Type": "application/json"})


class HubServer:
    """The fake Hub: ``with HubServer(tokens={"hf_x": "alice"}) as hub: ... hub.url ...``.

    ``tokens`` maps each valid token to its user; ``orgs`` maps a user to the organisations it
    may write to besides its own namespace (``None``: any valid token may write anywhere).
    """

    def __init__(
        self,
        tokens: Mapping[str, str] | None = None,
        orgs: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.tokens = dict(tokens or {})
        self.orgs = None if orgs is None else {user: set(names) for user, names in orgs.items()}
        self.server_errors: list[str] = []
        self._port = 0
        self._lock = threading.RLock()
        self._repos: dict[str, _Repo] = {}
        self._requests: list[RecordedRequest] = []
        self._httpd: _HTTPServer | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("the server has not been started")
        return f"http://127.0.0.1:{self._port}"

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

    def set_down(self, down: bool) -> None:
        """Close the listening socket and every connection (the client gets "connection
        refused"), or listen again at the same address."""
        if not self._port:
            raise RuntimeError("the server has not been started")
        if down:
            self._close_listener()
        elif self._httpd is None:
            self._listen()

    def reset(self) -> None:
        """Forget every repo, request and server error, and come back up if down."""
        with self._lock:
            self._repos.clear()
            self._requests.clear()
            self.server_errors.clear()
        self.set_down(False)

    def _listen(self) -> None:
        self._httpd = _HTTPServer(("127.0.0.1", self._port), self)
        self._port = self._httpd.server_address[1]
        serve = functools.partial(self._httpd.serve_forever, poll_interval=0.02)
        threading.Thread(target=serve, daemon=True).start()

    def _close_listener(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()  # returns once serve_forever has
            httpd.drop_connections()
            httpd.server_close()

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
            repo, shas = self._repos[repo_id], []
            sha: str | None = repo.branches[branch]
            while sha is not None:
                shas.append(sha)
                sha = repo.commits[sha].parent
            return shas[::-1]

    def files(self, repo_id: str, revision: str = DEFAULT_BRANCH) -> dict[str, bytes]:
        """Path -> stored bytes at ``revision`` (a branch or a commit sha)."""
        with self._lock:
            repo = self._repos[repo_id]
            return {path: repo.blobs[oid] for path, oid in repo.resolve(revision).files.items()}

    def seed(self, repo_id: str, files: Mapping[str, bytes], *, private: bool = False) -> str:
        """Commit ``files`` to ``main``, creating the repo if needed; return the commit sha."""
        with self._lock:
            if repo_id not in self._repos:
                self._repos[repo_id] = _new_repo(repo_id, private)
            repo = self._repos[repo_id]
            head = repo.resolve(DEFAULT_BRANCH)
            return repo.commit(DEFAULT_BRANCH, {**head.files, **repo.store(files)})

    def corrupt(self, repo_id: str, path: str) -> bytes:
        """Flip every bit of ``path``'s blob at ``main``, without a new commit; return the new
        bytes. The blob keeps its name, so ETag and tree ``oid`` announce the old sha1."""
        with self._lock:
            repo = self._repos[repo_id]
            oid = repo.resolve(DEFAULT_BRANCH).files[path]
            repo.blobs[oid] = bytes(byte ^ 0xFF for byte in repo.blobs[oid]) or b"\x00"
            return repo.blobs[oid]

    # ------------------------------------------------------------------ HTTP

    def _respond(self, request: _Request) -> _Response:
        with self._lock:
            recorded = RecordedRequest(request.method, request.path, request.headers, request.body)
            self._requests.append(recorded)
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
        method, segments = request.method, request.segments
        if segments[:2] == ["api", "models"] and len(segments) >= 4:
            return self._route_repo(request, "/".join(segments[2:4]), segments[4:])
        if (method, segments) == ("POST", ["api", "repos", "create"]):
            return self._create_repo(request)
        if (method, segments) == ("POST", ["api", "validate-yaml"]):
            return _Response.of_json({"errors": [], "warnings": []})
        if method in {"GET", "HEAD"} and segments[2:3] == ["resolve"] and len(segments) >= 5:
            path = "/".join(segments[4:])
            return self._resolve_file(request, "/".join(segments[:2]), segments[3], path)
        raise HubError(404, "Not found")

    def _route_repo(self, request: _Request, repo_id: str, rest: list[str]) -> _Response:
        """``rest``: the segments after ``/api/models/{org}/{name}``: an action, its arguments."""
        action, arguments = (rest[0], rest[1:]) if rest else ("", [])
        joined = "/".join(arguments)
        handlers = {
            ("GET", ""): lambda: self._model_info(request, repo_id, DEFAULT_BRANCH),
            ("GET", "revision"): lambda: self._model_info(request, repo_id, joined),
            ("GET", "tree"): lambda: self._tree(request, repo_id, arguments),
            ("POST", "branch"): lambda: self._create_branch(request, repo_id, joined),
            ("POST", "preupload"): lambda: self._preupload(request, repo_id, joined),
            ("POST", "commit"): lambda: self._commit(request, repo_id, joined),
        }
        handler = handlers.get((request.method, action))
        if handler is None:
            raise HubError(404, "Not found")
        return handler()

    def _may_write(self, user: str | None, namespace: str) -> bool:
        if user is None:
            return False
        return self.orgs is None or namespace == user or namespace in self.orgs.get(user, ())

    def _readable_repo(self, request: _Request, repo_id: str) -> _Repo:
        """The repo, if it exists and is public or the user may write to its namespace."""
        repo = self._repos.get(repo_id)
        if repo is None or (
            repo.private and not self._may_write(request.user, _namespace(repo_id))
        ):
            raise _repo_not_found(request.user)
        return repo

    def _writable_repo(self, request: _Request, repo_id: str) -> _Repo:
        _require_user(request)
        repo = self._readable_repo(request, repo_id)
        if not self._may_write(request.user, _namespace(repo_id)):
            raise _forbidden(_namespace(repo_id), "write to a model")
        return repo

    def _create_repo(self, request: _Request) -> _Response:
        user, payload = _require_user(request), request.json()
        if payload.get("type") not in (None, "model"):
            raise HubError(400, "This test server only serves model repos")
        namespace, name = payload.get("organization"), payload.get("name")
        if not namespace or not name:
            raise HubError(400, "This test server wants repo ids of the form org/name")
        if not self._may_write(user, namespace):
            raise _forbidden(namespace, "create a model")
        repo_id, url = f"{namespace}/{name}", f"{self.url}/{namespace}/{name}"
        if repo_id in self._repos:  # the client reads "url" from the 409 when exist_ok=True
            raise HubError(409, "You already created this model repo", body={"url": url})
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self._repos[repo_id] = _new_repo(repo_id, private)
        return _Response.of_json({"url": url, "name": repo_id, "id": repo_id})

    def _create_branch(self, request: _Request, repo_id: str, branch: str) -> _Response:
        repo = self._writable_repo(request, repo_id)
        _check_branch_name(branch)
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        start = request.json().get("startingPoint") or DEFAULT_BRANCH
        repo.branches[branch] = repo.resolve(start).sha
        return _Response.of_json({})

    def _preupload(self, request: _Request, repo_id: str, revision: str) -> _Response:
        head = self._writable_repo(request, repo_id).resolve(revision)
        paths = [item["path"] for item in request.json().get("files", [])]
        regular = {"uploadMode": "regular", "shouldIgnore": False}
        answers = [{"path": path, "oid": head.files.get(path), **regular} for path in paths]
        return _Response.of_json({"files": answers, "commitOid": head.sha})

    def _commit(self, request: _Request, repo_id: str, branch: str) -> _Response:
        repo = self._writable_repo(request, repo_id)
        _check_branch_name(branch)
        if request.flag("create_pr"):
            raise HubError(400, "This test server does not support pull requests")
        if branch not in repo.branches:
            raise _revision_not_found(branch)
        header, operations = _parse_commit(request.body)
        head = repo.resolve(branch)
        if not head.sha.startswith(header.get("parentCommit") or ""):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for key, value in operations:
            _apply(repo, files, key, value)
        sha = repo.commit(branch, files)
        commit_url = f"{self.url}/{repo_id}/commit/{sha}"
        return _Response.of_json({"success": True, "commitOid": sha, "commitUrl": commit_url})

    def _model_info(self, request: _Request, repo_id: str, revision: str) -> _Response:
        repo = self._readable_repo(request, repo_id)
        commit = repo.resolve(revision)
        siblings = [{"rfilename": path} for path in sorted(commit.files)]
        if request.flag("blobs"):  # files_metadata=True
            for sibling in siblings:
                oid = sibling["blobId"] = commit.files[sibling["rfilename"]]
                sibling["size"] = len(repo.blobs[oid])
        info = {"id": repo_id, "sha": commit.sha, "private": repo.private, "siblings": siblings}
        info.update(downloads=0, likes=0, tags=[])  # huggingface_hub < 0.24 requires them
        return _Response.of_json(info)

    def _tree(self, request: _Request, repo_id: str, arguments: list[str]) -> _Response:
        repo = self._readable_repo(request, repo_id)
        commit = repo.resolve(arguments[0] if arguments else "")
        folder = "/".join(arguments[1:]).strip("/")
        entries = _tree_entries(repo, commit, folder, request.flag("recursive"))
        if folder and not entries:
            raise HubError(404, f"{folder} does not exist at {commit.sha}", "EntryNotFound")
        return _Response.of_json(entries)

    def _resolve_file(self, request: _Request, repo_id: str, revision: str, path: str) -> _Response:
        repo = self._readable_repo(request, repo_id)
        commit = repo.resolve(revision)
        headers = {"X-Repo-Commit": commit.sha}
        if path not in commit.files:
            message = f"{path} does not exist at {commit.sha}"
            raise HubError(404, message, "EntryNotFound", headers)
        oid = commit.files[path]
        headers |= {"ETag": f'"{oid}"', "Accept-Ranges": "bytes"}
        headers["Content-Type"] = "application/octet-stream"
        return _ranged(repo.blobs[oid], request.headers.get("range"), headers)


# ---------------------------------------------------------------------- helpers


def _namespace(repo_id: str) -> str:
    return repo_id.split("/")[0]


def _require_user(request: _Request) -> str:
    if request.user is None:
        raise HubError(401, NO_TOKEN_MESSAGE)
    return request.user


def _check_branch_name(name: str) -> None:
    if _INVALID_BRANCH.search(name):
        raise HubError(400, f"Invalid branch name: {name!r}")


def _parse_commit(body: bytes) -> tuple[dict, list[tuple[str, dict]]]:
    try:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    except ValueError as error:
        raise HubError(400, f"Invalid NDJSON commit payload: {error}") from error
    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "The commit payload must start with a header line")
    return lines[0]["value"], [(line["key"], line["value"]) for line in lines[1:]]


def _apply(repo: _Repo, files: dict[str, str], key: str, value: dict) -> None:
    path = value.get("path", "")
    if key == "file":
        files.update(repo.store({path: _decode_base64(value)}))
    elif key == "deletedFile":
        if files.pop(path, None) is None:
            raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
    elif key == "deletedFolder":
        doomed = [name for name in files if name.startswith(path.rstrip("/") + "/")]
        if not doomed:
            raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
        for name in doomed:
            del files[name]
    else:
        raise HubError(400, f"Unsupported commit operation {key!r} (no LFS here)")


def _decode_base64(value: dict) -> bytes:
    try:
        if value.get("encoding") == "base64":
            return base64.b64decode(value.get("content", ""), validate=True)
    except binascii.Error:
        pass
    raise HubError(400, f"Expected valid base64 content for {value.get('path')}")


def _tree_entries(repo: _Repo, commit: _Commit, folder: str, recursive: bool) -> list[dict]:
    """Files and folders under ``folder``: its children, or all descendants if ``recursive``."""
    prefix = f"{folder}/" if folder else ""
    entries, folders = [], set()
    for path, oid in sorted(commit.files.items()):
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
            folders.add(prefix + "/".join(parts[:depth]))
        if recursive or len(parts) == 1:
            entries.append({"type": "file", "oid": oid, "size": len(repo.blobs[oid]), "path": path})
    for name in sorted(folders):
        tree_id = hashlib.sha1(f"{commit.sha}:{name}".encode()).hexdigest()
        entries.append({"type": "directory", "oid": tree_id, "size": 0, "path": name})
    return entries


def _ranged(data: bytes, range_header: str | None, headers: dict[str, str]) -> _Response:
    """All of ``data`` (200), or the one byte range asked for (206), or a 416."""
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
        unsatisfiable = {"Content-Range": f"bytes */{size}"}
        raise HubError(416, "Requested range not satisfiable", headers=unsatisfiable)
    headers = {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}
    return _Response(206, data[start : end + 1], headers)


def _error_response(error: HubError) -> _Response:
    response = _Response.of_json({"error": error.message, **error.body}, error.status)
    response.headers["X-Error-Message"] = error.message
    if error.code is not None:
        response.headers["X-Error-Code"] = error.code
    response.headers.update(error.headers)
    return response


class _HTTPServer(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server that knows its open connections, so they can be cut at once."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], hub: HubServer) -> None:
        self.hub = hub
        self.connections: set[socket.socket] = set()
        self._connections_changed = threading.Condition()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn: a slow reverse DNS lookup.
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
        if "Transfer-Encoding" in self.headers:  # the client never sends chunked bodies
            self.server.hub.server_errors.append(f"chunked body refused: {self.requestline}")
            close = {"Connection": "close"}
            self._write(_error_response(HubError(411, "Length Required", headers=close)))
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._write(self.server.hub._respond(_Request(self.command, self.path, headers, body)))

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _write(self, response: _Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


def point_client_at(monkeypatch: Any, url: str) -> None:
    """Point huggingface_hub at ``url`` for one test (``monkeypatch`` is pytest's fixture):
    patch the two endpoint constants, turn offline mode off, and drop the environment
    variables that could leak a real token or endpoint into the test."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", url)
    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    from huggingface_hub import file_download, hf_api  # < 1.0 / < 0.25 copy them at import

    monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template, raising=False)
    monkeypatch.setattr(hf_api, "ENDPOINT", url, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HUGGINGFACE_CO_STAGING"):
        monkeypatch.delenv(name, raising=False)
