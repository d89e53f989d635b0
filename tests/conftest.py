"""Shared fixtures: every test starts from the same seed, builds tiny inputs itself, and never
reaches the network; Hub tests talk to the Hub look-alike of tests/hub_server.py on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub import constants, file_download

from .hub_server import HubServer, point_client_at

# Every registered architecture; each ships MNIST weights.
ARCHITECTURES = [
    "lenet",
    "mc_dropout_lenet",
    "bayesian_lenet",
    "deep_ensemble_lenet",
    "laplace_lenet",
]
ALL_ARCHITECTURES = ARCHITECTURES
# Every official checkpoint: each architecture's MNIST weights, and lenet.mnist temperature-scaled.
CHECKPOINTS = sorted([*(f"{name}.mnist" for name in ARCHITECTURES), "lenet.mnist_ts"])
STOCHASTIC = ["mc_dropout_lenet", "bayesian_lenet"]
REPOSITORY = Path(__file__).resolve().parents[1]
DATASET_FOLDERS = ("MNIST", "FashionMNIST")
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _cpu_unless_marked_cuda(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Make ``--device auto`` the CPU, here and in subprocesses, so that the suite checks the
    same numbers on a GPU machine; tests marked ``cuda`` name their device themselves."""
    if request.node.get_closest_marker("cuda"):
        monkeypatch.delenv("ZOO_DEVICE", raising=False)
    else:
        monkeypatch.setenv("ZOO_DEVICE", "cpu")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Refuse name lookups of any host but this one, so that no test can download (but the
    opt-in tests marked live_hub, which talk to the real Hub)."""
    if request.node.get_closest_marker("live_hub"):
        return
    resolve = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in _LOCAL_HOSTS:
            raise socket.gaierror(socket.EAI_NONAME, f"tests may not reach {host}")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)


@pytest.fixture
def images() -> torch.Tensor:
    """Six random uint8 28x28 images."""
    generator = torch.Generator().manual_seed(1234)
    return torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8, generator=generator)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private data root holding copies of the official MNIST and FashionMNIST gz files.

    They come from ``$ZOO_TEST_DATA``, else the ``shared/data`` folder beside this repository
    (or beside the repository it was cloned from). Without them the data tests are skipped,
    except under CI (``CI`` set), where that is a failure.
    """
    source = _find_shared_data()
    if source is None:
        message = "the official MNIST/FashionMNIST files were not found; set ZOO_TEST_DATA"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("data")
    for folder in DATASET_FOLDERS:
        shutil.copytree(source / folder / "raw", root / folder / "raw")
    return root


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root of 50 random MNIST and 30 random FashionMNIST images, in IDX files."""
    return write_random_data_root(tmp_path_factory.mktemp("tiny-data"), 50, 30, seed=7)


def write_random_data_root(root: Path, mnist: int, fashion_mnist: int, *, seed: int) -> Path:
    """Fill ``root`` with ``mnist`` random MNIST and ``fashion_mnist`` random FashionMNIST
    images and labels, in IDX files; return it."""
    generator = torch.Generator().manual_seed(seed)
    for folder, count in (("MNIST", mnist), ("FashionMNIST", fashion_mnist)):
        images = torch.randint(0, 256, (count, 28, 28), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, 10, (count,), dtype=torch.uint8, generator=generator)
        write_idx_dataset(root, folder, images, labels)
    return root


def write_idx_dataset(root: Path, folder: str, images: torch.Tensor, labels: torch.Tensor) -> Path:
    """Write the four extracted files of ``folder`` (train and test alike) as torchvision
    expects them, and return their folder."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return raw


def write_idx(path: Path, values: torch.Tensor) -> None:
    """Write ``values`` (uint8) as an uncompressed IDX file, the format MNIST ships in."""
    header = bytes([0, 0, 8, values.dim()])
    header += b"".join(size.to_bytes(4, "big") for size in values.shape)
    path.write_bytes(header + values.numpy().tobytes())


def _find_shared_data() -> Path | None:
    candidates = [REPOSITORY.parent / "shared" / "data"]
    if os.environ.get("ZOO_TEST_DATA"):
        candidates.insert(0, Path(os.environ["ZOO_TEST_DATA"]))
    origin = subprocess.run(
        ["git", "-C", str(REPOSITORY), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared" / "data")
    for candidate in candidates:
        if all((candidate / folder / "raw").is_dir() for folder in DATASET_FOLDERS):
            return candidate
    return None


HUB_TOKEN = "hf_zooTestsSecretToken5f1c9a"
HUB_USER = "zoo-tester"


@pytest.fixture(scope="session")
def hub_server() -> Iterator[HubServer]:
    with HubServer(tokens={HUB_TOKEN: HUB_USER}, orgs={HUB_USER: {"zoo-test", "my-org"}}) as server:
        yield server


@pytest.fixture
def hub(
    hub_server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[HubServer]:
    """The Hub look-alike, emptied, with huggingface_hub pointed at it, in this process and in
    subprocesses (HF_ENDPOINT), and a fresh HF_HOME holding no token."""
    point_client_at(monkeypatch, hub_server.url)
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    for name, value in {
        "HF_HOME": home,
        "HF_HUB_CACHE": home / "hub",
        "HF_TOKEN_PATH": home / "token",
        "HF_STORED_TOKENS_PATH": home / "stored_tokens",
    }.items():
        monkeypatch.setattr(constants, name, str(value), raising=False)  # < 0.26: no stored tokens
    monkeypatch.setattr(file_download, "HF_HUB_CACHE", str(home / "hub"), raising=False)  # < 0.25
    hub_server.reset()
    _fresh_http_sessions()
    yield hub_server
    _fresh_http_sessions()
    assert hub_server.server_errors == []


def set_hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """What HF_HUB_OFFLINE=1 does, for this process, which read the variable at import."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _fresh_http_sessions()


def _fresh_http_sessions() -> None:
    """huggingface_hub < 1.0 caches HTTP sessions that keep the offline mode they were built in."""
    reset = getattr(huggingface_hub.utils, "reset_sessions", None)
    if reset is not None:
        reset()
