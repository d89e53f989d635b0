"""The fake Hub of ``tests/hub_server.py``, driven by the real huggingface_hub client.

These tests also pin the client behaviour that ``zoo`` relies on: what it raises for missing
repos, revisions and files, for private repos, and what it does offline or when the Hub is down.
"""

from __future__ import annotations

import http.client
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx2
import huggingface_hub
import pytest
from huggingface_hub import HfApi, RepoFolder, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    BadRequestError,
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import _http

from .hub_server import HubServer, git_blob_sha1, point_client_at

TOKEN = "hf_test_token"
USER = "alice"
ORG = "zoo-org"
REPO = f"{ORG}/lenet"
FILES = {
    "config.json": b'{"architecture": "lenet"}\n',
    "README.md": b"---\nlicense: apache-2.0\n---\n# LeNet\n",
    "weights/model.bin": random.Random(0).randbytes(100_000),
}


@pytest.fixture(scope="module")
def hub_server() -> Iterator[HubServer]:
    with HubServer(tokens={TOKEN: USER}, orgs={USER: {ORG}}) as server:
        yield server


@pytest.fixture
def hub(hub_server: HubServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    hub_server.reset()
    point_client_at(monkeypatch, hub_server.url)
    yield hub_server
    assert hub_server.server_errors == []


@pytest.fixture
def api(hub: HubServer) -> HfApi:
    return HfApi(token=TOKEN)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "upload", FILES)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf"


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def upload(api: HfApi, folder: Path, repo_id: str = REPO, **kwargs) -> str:
    api.create_repo(repo_id, exist_ok=True, private=kwargs.pop("private", None))
    return api.upload_folder(repo_id=repo_id, folder_path=folder, **kwargs).oid


def download(cache: Path, filename: str, repo_id: str = REPO, **kwargs) -> Path:
    kwargs.setdefault("token", TOKEN)
    return Path(hf_hub_download(repo_id, filename, cache_dir=cache, **kwargs))


def snapshot_of(cache: Path, commit: str, repo_id: str = REPO) -> Path:
    return cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit


@pytest.fixture
def uploaded(api: HfApi, folder: Path) -> str:
    return upload(api, folder)


# ---------------------------------------------------------------------- upload and download


def test_one_upload_is_one_commit_downloaded_byte_for_byte(
    hub: HubServer, api: HfApi, folder: Path, cache: Path
) -> None:
    api.create_repo(REPO)
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO
    before = hub.commits(REPO)

    commit = api.upload_folder(repo_id=REPO, folder_path=folder).oid

    assert hub.commits(REPO) == [*before, commit]
    for name, data in FILES.items():
        local = download(cache, name)
        assert local.read_bytes() == data
        assert local == snapshot_of(cache, commit) / name
    assert (cache / "models--zoo-org--lenet" / "refs" / "main").read_text() == commit


def test_every_request_carries_the_token(
    hub: HubServer, api: HfApi, folder: Path, cache: Path
) -> None:
    upload(api, folder)
    download(cache, "config.json")

    requests = [r for r in hub.requests if not r.path.startswith("/api/agent-harnesses")]
    assert len(requests) >= 4
    assert {r.headers.get("authorization") for r in requests} == {f"Bearer {TOKEN}"}


def test_endpoint_arguments_work_without_patching_constants(
    hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_server.reset()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    api = HfApi(endpoint=hub_server.url, token=TOKEN)
    commit = upload(api, write_folder(tmp_path / "upload", FILES))

    local = download(tmp_path / "hf", "config.json", endpoint=hub_server.url)

    assert local == snapshot_of(tmp_path / "hf", commit) / "config.json"


def test_module_level_functions_keep_the_endpoint_of_import_time(hub: HubServer) -> None:
    assert HfApi().endpoint == hub.url
    assert huggingface_hub.hf_api.api.endpoint != hub.url
    assert huggingface_hub.model_info.__self__ is huggingface_hub.hf_api.api


def test_seeded_repos_serve_their_files(hub: HubServer, cache: Path) -> None:
    public = hub.seed("zoo-org/seeded", {"a.txt": b"a"})
    hub.seed("zoo-org/hidden", {"b.txt": b"b"}, private=True)

    assert download(cache, "a.txt", repo_id="zoo-org/seeded", token=False).read_bytes() == b"a"
    assert hub.commits("zoo-org/seeded")[-1] == public
    with pytest.raises(RepositoryNotFoundError):
        download(cache, "b.txt", repo_id="zoo-org/hidden", token=False)
    assert download(cache, "b.txt", repo_id="zoo-org/hidden").read_bytes() == b"b"


def test_creating_an_existing_repo_is_a_409(hub: HubServer, api: HfApi) -> None:
    api.create_repo(REPO)
    with pytest.raises(HfHubHTTPError) as error:
        api.create_repo(REPO)
    assert error.value.response.status_code == 409


def test_commit_sha_gives_old_bytes_and_main_the_new(
    hub: HubServer, api: HfApi, folder: Path, cache: Path
) -> None:
    first = upload(api, folder)
    (folder / "config.json").write_bytes(b'{"architecture": "lenet", "width": 2}\n')
    second = upload(api, folder)

    assert second != first
    assert hub.commits(REPO)[-2:] == [first, second]
    assert download(cache, "config.json", revision=first).read_bytes() == FILES["config.json"]
    assert download(cache, "config.json").read_bytes().endswith(b'"width": 2}\n')
    assert hub.files(REPO, first)["config.json"] == FILES["config.json"]


def test_uploading_an_unchanged_folder_makes_no_commit(
    hub: HubServer, api: HfApi, folder: Path
) -> None:
    first = upload(api, folder)
    again = upload(api, folder)

    assert again == first
    assert hub.commits(REPO)[-1] == first


def test_snapshot_model_info_and_listing(
    hub: HubServer, api: HfApi, folder: Path, cache: Path
) -> None:
    commit = upload(api, folder)

    snapshot = snapshot_download(REPO, cache_dir=cache, token=TOKEN, allow_patterns=["*.json"])
    info = api.model_info(REPO, files_metadata=True)

    assert Path(snapshot) == snapshot_of(cache, commit)
    assert sorted(p.name for p in Path(snapshot).iterdir()) == ["config.json"]
    assert info.sha == commit and info.private is False
    sizes = {sibling.rfilename: sibling.size for sibling in info.siblings}
    assert sizes == {".gitattributes": len(hub.files(REPO)[".gitattributes"])} | {
        name: len(data) for name, data in FILES.items()
    }
    assert sorted(api.list_repo_files(REPO)) == sorted([".gitattributes", *FILES])
    weights = list(api.list_repo_tree(REPO, path_in_repo="weights"))
    assert [(f.path, f.blob_id) for f in weights] == [
        ("weights/model.bin", git_blob_sha1(FILES["weights/model.bin"]))
    ]
    tree = api.list_repo_tree(REPO, recursive=True)
    assert [f.path for f in tree if isinstance(f, RepoFolder)] == ["weights"]


def test_model_info_at_a_commit_sha(hub: HubServer, api: HfApi, folder: Path) -> None:
    first = upload(api, folder)
    (folder / "extra.txt").write_bytes(b"more")
    upload(api, folder)

    info = api.model_info(REPO, revision=first)

    assert info.sha == first
    assert "extra.txt" not in {sibling.rfilename for sibling in info.siblings}


def test_branch_upload_and_download(hub: HubServer, api: HfApi, folder: Path, cache: Path) -> None:
    main = upload(api, folder)
    api.create_branch(REPO, branch="dev")
    (folder / "config.json").write_bytes(b"{}")
    dev = upload(api, folder, revision="dev")

    assert hub.branches(REPO) == {"main": main, "dev": dev}
    assert download(cache, "config.json", revision="dev").read_bytes() == b"{}"
    assert download(cache, "config.json").read_bytes() == FILES["config.json"]
    with pytest.raises(HfHubHTTPError) as error:
        api.create_branch(REPO, branch="dev")
    assert error.value.response.status_code == 409
    api.create_branch(REPO, branch="dev", exist_ok=True)


def test_upload_with_delete_patterns_replaces_the_repo_content_in_one_commit(
    hub: HubServer, api: HfApi, folder: Path, tmp_path: Path
) -> None:
    first = upload(api, folder)
    fresh = write_folder(tmp_path / "fresh", {"README.md": b"# new\n", "new/x.txt": b"x"})
    hub.clear_requests()

    second = api.upload_folder(repo_id=REPO, folder_path=fresh, delete_patterns="*").oid

    assert hub.commits(REPO)[-2:] == [first, second]
    assert hub.files(REPO) == {
        ".gitattributes": hub.files(REPO, first)[".gitattributes"],
        "README.md": b"# new\n",
        "new/x.txt": b"x",
    }
    assert [r.method for r in hub.requests if "/commit/" in r.path] == ["POST"]
    assert any("/tree/main" in r.path and "recursive=" in r.path for r in hub.requests)


def test_deleting_a_folder_is_one_commit(hub: HubServer, api: HfApi, uploaded: str) -> None:
    commit = api.delete_folder("weights", repo_id=REPO).oid

    assert hub.commits(REPO)[-2:] == [uploaded, commit]
    assert sorted(hub.files(REPO)) == [".gitattributes", "README.md", "config.json"]


# ---------------------------------------------------------------------- errors


def test_unknown_repo_revision_and_file(
    hub: HubServer, api: HfApi, folder: Path, cache: Path
) -> None:
    upload(api, folder)

    with pytest.raises(RepositoryNotFoundError):
        download(cache, "config.json", repo_id="zoo-org/missing")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("zoo-org/missing")
    with pytest.raises(RevisionNotFoundError):
        download(cache, "config.json", revision="no-such-branch")
    with pytest.raises(RemoteEntryNotFoundError):
        download(cache, "missing.txt")


def test_a_missing_file_is_remembered_in_the_cache(
    hub: HubServer, api: HfApi, folder: Path, cache: Path
) -> None:
    commit = upload(api, folder)
    with pytest.raises(EntryNotFoundError):
        download(cache, "missing.txt")
    assert (cache / "models--zoo-org--lenet" / ".no_exist" / commit / "missing.txt").exists()


def test_private_repo_reads_as_missing_without_a_token(
    hub: HubServer, api: HfApi, folder: Path, cache: Path
) -> None:
    upload(api, folder, private=True)

    assert hub.is_private(REPO)
    with pytest.raises(RepositoryNotFoundError, match="401 Client Error"):
        download(cache, "config.json", token=False)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).model_info(REPO)
    assert download(cache, "config.json").read_bytes() == FILES["config.json"]


def test_private_cached_file_is_returned_without_a_token(
    hub: HubServer, api: HfApi, folder: Path, cache: Path
) -> None:
    upload(api, folder, private=True)
    cached = download(cache, "config.json")

    assert download(cache, "config.json", token=False) == cached


@pytest.mark.parametrize(
    ("token", "message"),
    [(False, "Invalid username or password"), ("hf_wrong", "Invalid credentials")],
    ids=["no-token", "wrong-token"],
)
def test_writes_need_a_valid_token(
    hub: HubServer, api: HfApi, folder: Path, token: bool | str, message: str
) -> None:
    api.create_repo(REPO)
    anonymous = HfApi(token=token)

    with pytest.raises(HfHubHTTPError, match=message) as error:
        anonymous.create_repo("zoo-org/other")
    assert error.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as error:
        anonymous.upload_folder(repo_id=REPO, folder_path=folder)
    assert error.value.response.status_code == 401
    assert not isinstance(error.value, RepositoryNotFoundError)
    assert not hub.repo_exists("zoo-org/other")


# ---------------------------------------------------------------------- permissions


def test_writes_are_allowed_in_the_own_namespace_and_the_orgs_only(
    hub: HubServer, api: HfApi, folder: Path, cache: Path
) -> None:
    hub.seed("bob/public", {"a.txt": b"a"})
    hub.seed("bob/secret", {"b.txt": b"b"}, private=True)
    assert api.create_repo(f"{USER}/mine").repo_id == f"{USER}/mine"
    upload(api, folder, repo_id=REPO)

    with pytest.raises(HfHubHTTPError, match='create a model under the namespace "bob"') as error:
        api.create_repo("bob/new")
    assert error.value.response.status_code == 403
    assert not isinstance(error.value, RepositoryNotFoundError)
    with pytest.raises(HfHubHTTPError) as error:  # create_repo(exist_ok) lets the 403 pass
        upload(api, folder, repo_id="bob/public")
    assert error.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as error:
        api.create_branch("bob/public", branch="dev")
    assert error.value.response.status_code == 403
    assert not hub.repo_exists("bob/new") and hub.branches("bob/public").keys() == {"main"}
    assert download(cache, "a.txt", repo_id="bob/public").read_bytes() == b"a"
    with pytest.raises(RepositoryNotFoundError, match="404 Client Error"):
        api.model_info("bob/secret")
    with pytest.raises(BadRequestError):  # a repo id without a namespace
        api.create_repo("mine")


def test_without_orgs_every_token_writes_everywhere() -> None:
    with HubServer(tokens={TOKEN: USER}) as server:
        api = HfApi(endpoint=server.url, token=TOKEN)
        api.create_repo("anyone/anything", private=True)
        assert api.model_info("anyone/anything").private is True


@pytest.mark.parametrize(
    "branch", ["", "with space", "a..b", "refs/heads/x", "/x", "x/", "x.lock", "ab" * 20]
)
def test_invalid_branch_names_are_a_400(
    hub: HubServer, api: HfApi, uploaded: str, connection: http.client.HTTPConnection, branch: str
) -> None:
    with pytest.raises(BadRequestError):
        api.create_branch(REPO, branch=branch)
    assert hub.branches(REPO).keys() == {"main"}
    commit = b'{"key": "header", "value": {"summary": "x"}}\n'
    path = f"/api/models/{REPO}/commit/{quote(branch, safe='')}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response, body = exchange(connection, "POST", path, body=commit, headers=headers)
    assert response.status == 400 and "Invalid branch name" in json.loads(body)["error"]
    assert hub.commits(REPO)[-1] == uploaded


# ---------------------------------------------------------------------- offline and down


def test_local_files_only_reads_the_cache_without_a_request(
    hub: HubServer, uploaded: str, cache: Path
) -> None:
    cached = download(cache, "config.json")
    hub.clear_requests()

    assert download(cache, "config.json", local_files_only=True) == cached
    with pytest.raises(LocalEntryNotFoundError):
        download(cache, "README.md", local_files_only=True)
    assert hub.requests == []


def test_server_down_falls_back_to_the_cached_file(
    hub: HubServer, uploaded: str, cache: Path
) -> None:
    cached = download(cache, "config.json")
    hub.set_down(True)

    assert download(cache, "config.json") == cached
    assert download(cache, "config.json", revision=uploaded) == cached
    hub.set_down(False)
    assert download(cache, "README.md").read_bytes() == FILES["README.md"]


def test_server_down_is_a_bare_connect_error_for_api_calls(
    hub: HubServer,
    api: HfApi,
    uploaded: str,
    folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sleeps = record_backoff_sleeps(monkeypatch)
    hub.set_down(True)

    with pytest.raises(httpx2.ConnectError):
        api.model_info(REPO)
    with pytest.raises(httpx2.ConnectError):  # README.md: validate-yaml fails first, no retry
        api.upload_folder(repo_id=REPO, folder_path=folder)
    assert sleeps == []
    with pytest.raises(httpx2.ConnectError):  # no README.md: preupload retries with backoff
        api.upload_folder(repo_id=REPO, folder_path=write_folder(tmp_path / "x", {"a": b"a"}))
    assert sleeps == [1, 2, 4, 8, 8]
    assert not issubclass(httpx2.ConnectError, OSError)


@pytest.mark.parametrize("revision", ["main", "commit"])
def test_server_down_and_nothing_cached_raises_after_backoff(
    hub: HubServer, uploaded: str, cache: Path, monkeypatch: pytest.MonkeyPatch, revision: str
) -> None:
    sleeps = record_backoff_sleeps(monkeypatch)
    hub.set_down(True)

    with pytest.raises(LocalEntryNotFoundError):
        download(cache, "config.json", revision=uploaded if revision == "commit" else revision)
    assert sleeps == [1, 2, 4, 8, 8]


def record_backoff_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make huggingface_hub's HTTP backoff return at once; return the sleeps it asked for."""
    sleeps: list[float] = []

    class TimeWithoutSleep:
        def __getattr__(self, name: str):
            return getattr(time, name)

        def sleep(self, seconds: float) -> None:
            sleeps.append(seconds)

    monkeypatch.setattr(_http, "time", TimeWithoutSleep())
    return sleeps


def test_snapshot_download_when_down(hub: HubServer, uploaded: str, cache: Path) -> None:
    snapshot = snapshot_download(REPO, cache_dir=cache, token=TOKEN)
    hub.set_down(True)

    assert snapshot_download(REPO, cache_dir=cache, token=TOKEN) == snapshot
    with pytest.raises(LocalEntryNotFoundError):
        snapshot_download(REPO, cache_dir=cache.with_name("empty"), token=TOKEN)


def test_offline_mode_is_read_at_import_not_from_the_environment(
    hub: HubServer, uploaded: str, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = download(cache, "config.json")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.clear_requests()
    download(cache, "config.json")
    assert hub.requests != []

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.clear_requests()
    assert download(cache, "config.json") == cached
    with pytest.raises(LocalEntryNotFoundError):
        download(cache, "README.md")
    assert hub.requests == []


# ---------------------------------------------------------------------- corruption


def test_a_corrupted_blob_downloads_without_complaint(
    hub: HubServer, uploaded: str, tmp_path: Path
) -> None:
    good_cache = tmp_path / "good"
    download(good_cache, "weights/model.bin")
    corrupted = hub.corrupt(REPO, "weights/model.bin")

    local = download(tmp_path / "fresh", "weights/model.bin")

    assert corrupted != FILES["weights/model.bin"] and len(corrupted) == len(
        FILES["weights/model.bin"]
    )
    assert local.read_bytes() == corrupted
    assert local.resolve().name == git_blob_sha1(FILES["weights/model.bin"])
    assert hub.commits(REPO)[-1] == uploaded
    assert download(good_cache, "weights/model.bin").read_bytes() == FILES["weights/model.bin"]


# ---------------------------------------------------------------------- HTTP details


@pytest.fixture
def connection(hub: HubServer) -> Iterator[http.client.HTTPConnection]:
    host, port = hub.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    yield connection
    connection.close()


def exchange(connection: http.client.HTTPConnection, method: str, path: str, **kwargs):
    connection.request(method, path, **kwargs)
    response = connection.getresponse()
    return response, response.read()


def test_rejected_bodies_are_read_so_the_connection_survives(
    hub: HubServer, uploaded: str, connection: http.client.HTTPConnection
) -> None:
    big = json.dumps({"name": "x" * 2_000_000}).encode()
    response, _ = exchange(connection, "POST", "/api/repos/create", body=big)
    assert response.status == 401
    socket = connection.sock

    response, body = exchange(connection, "GET", f"/api/models/{REPO}")

    assert response.status == 200 and json.loads(body)["sha"] == uploaded
    assert connection.sock is socket
    assert [len(r.body) for r in hub.requests[-2:]] == [len(big), 0]


def test_a_chunked_body_is_refused_and_the_connection_closed(
    hub: HubServer, connection: http.client.HTTPConnection
) -> None:
    body, headers = b'4\r\n{"a"\r\n0\r\n\r\n', {"Transfer-Encoding": "chunked"}
    response, _ = exchange(connection, "POST", "/api/validate-yaml", body=body, headers=headers)

    assert response.status == 411 and response.getheader("Connection") == "close"
    assert hub.requests == [] and len(hub.server_errors) == 1
    hub.server_errors.clear()


def test_range_requests(
    hub: HubServer, uploaded: str, connection: http.client.HTTPConnection
) -> None:
    path = f"/{REPO}/resolve/main/weights/model.bin"
    data = FILES["weights/model.bin"]

    response, body = exchange(connection, "GET", path, headers={"Range": "bytes=10-19"})
    assert (response.status, body) == (206, data[10:20])
    assert response.getheader("Content-Range") == f"bytes 10-19/{len(data)}"
    response, body = exchange(connection, "GET", path, headers={"Range": "bytes=-5"})
    assert (response.status, body) == (206, data[-5:])
    response, _ = exchange(connection, "GET", path, headers={"Range": f"bytes={len(data)}-"})
    assert response.status == 416


def test_resolve_headers(
    hub: HubServer, uploaded: str, connection: http.client.HTTPConnection
) -> None:
    response, body = exchange(connection, "HEAD", f"/{REPO}/resolve/main/config.json")

    assert body == b""
    assert response.getheader("ETag") == f'"{git_blob_sha1(FILES["config.json"])}"'
    assert response.getheader("X-Repo-Commit") == uploaded
    assert response.getheader("Content-Length") == str(len(FILES["config.json"]))
    assert not [name for name in response.headers if name.lower().startswith(("x-xet", "x-linked"))]
