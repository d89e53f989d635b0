"""Choosing the device to run on (``auto`` picks CUDA, then Apple's MPS, then the CPU, unless
``$ZOO_DEVICE`` names one), seeding the generators of the device in use, and moving results to
the host."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
from collections.abc import Iterator

import torch
from torch import Tensor

from zoo.errors import DeviceError, InvalidInputError
from zoo.options import DEVICE_NAMES, SEED_RANGE

DEVICE_VARIABLE = "ZOO_DEVICE"


def select_device(name: str | torch.device = "auto") -> torch.device:
    """Return the device ``name`` asks for, checking that this machine has it.

    Args:
        name: "auto", "cpu", "cuda", "cuda:N" or "mps". "auto" is the device the environment
            variable ``ZOO_DEVICE`` names when it is set (``ZOO_DEVICE=cpu`` keeps a GPU
            machine's runs on the CPU), else CUDA if available, else MPS, else the CPU.

    Raises:
        DeviceError: an unknown device name, or a device this machine does not have.
    """
    if str(name) == "auto":
        chosen = os.environ.get(DEVICE_VARIABLE, "auto").strip() or "auto"
        if chosen == "auto":
            return select_device(_best_available())
        try:
            return select_device(chosen)
        except DeviceError as error:
            raise DeviceError(f"${DEVICE_VARIABLE}: {error}") from None
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        choices = ", ".join(DEVICE_NAMES)
        raise DeviceError(f"unknown device {name!r}; choose one of {choices}") from None
    if device.type not in DEVICE_NAMES:
        raise DeviceError(f"unsupported device {name!r}; choose one of {', '.join(DEVICE_NAMES)}")
    if not _available(device):
        raise DeviceError(f"device {name!r} is not available on this machine; use --device auto")
    if device.type == "cuda" and device.index is None:  # name the GPU: logs say which one ran
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def describe_device(device: torch.device) -> str:
    """A human-readable name, e.g. "cuda:0 (NVIDIA H100 80GB HBM3)" or "cpu (8 threads)"."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def describe_hardware(device: torch.device) -> str:
    """The processor this process runs on, and the GPU that ``device`` is, for the training log."""
    cpu = _cpu_model() or platform.processor() or platform.machine()
    description = f"{cpu}, {os.cpu_count()} logical cores, {torch.get_num_threads()} threads"
    if device.type == "cuda":
        description += f"; GPU {torch.cuda.get_device_name(device)}"
    elif device.type == "mps":
        description += "; Apple GPU (MPS)"
    return description


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        return None
    return None


def _best_available() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _available(device: torch.device) -> bool:
    if device.type == "cuda":
        index = device.index or 0
        return torch.cuda.is_available() and index < torch.cuda.device_count()
    if device.type == "mps":
        return torch.backends.mps.is_available()
    return True


def check_seed(seed: int) -> int:
    """Return ``seed`` if torch can seed with it, else raise `InvalidInputError`."""
    low, high = SEED_RANGE
    if isinstance(seed, bool) or not isinstance(seed, int) or not low <= seed <= high:
        raise InvalidInputError(f"seed must be an integer from {low} to {high}, got {seed!r}")
    return seed


def derived_seed(label: str) -> int:
    """A seed for the random stream that ``label`` names: 63 bits of its SHA-256, so that
    streams with different labels never coincide, as small consecutive seeds would."""
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big") >> 1


@contextlib.contextmanager
def seeded(seed: int, device: str | torch.device = "cpu") -> Iterator[None]:
    """Seed the CPU's generator, and ``device``'s when it is a GPU, for the block; then put
    back the states they had, so that code around the block draws as if it never ran.

    The CPU's state after seeding is ``torch.manual_seed(seed)``'s. Only the generators of
    ``device`` are touched: a CPU run never initialises CUDA, and a run on one GPU leaves the
    others' generators alone.
    """
    device = torch.device(device)
    check_seed(seed)
    cpu_state = torch.get_rng_state()
    device_state = _device_rng_state(device)
    torch.random.default_generator.manual_seed(seed)
    _seed_device(device, seed)
    try:
        yield
    finally:
        torch.set_rng_state(cpu_state)
        if device_state is not None:
            _set_device_rng_state(device, device_state)


def _device_rng_state(device: torch.device) -> Tensor | None:
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    if device.type == "mps":
        return torch.mps.get_rng_state()
    return None


def _seed_device(device: torch.device, seed: int) -> None:
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)
    elif device.type == "mps":
        torch.mps.manual_seed(seed)


def _set_device_rng_state(device: torch.device, state: Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    elif device.type == "mps":
        torch.mps.set_rng_state(state)


def to_host(tensor: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``tensor`` on the CPU, converted to ``dtype`` there.

    The move comes first: Apple's MPS has no float64, so converting on the device and then
    moving (``tensor.to("cpu", torch.float64)``) fails there, or returns zeros on some torch
    versions.
    """
    host = tensor.to("cpu")
    return host if dtype is None else host.to(dtype)


# cuBLAS repeats its results only with a fixed workspace (CUDA's documentation on cuBLAS
# reproducibility, and torch's on reproducibility, ask for this setting).
_CUBLAS_WORKSPACE = ("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """With ``enabled``, ask torch for deterministic kernels for the block, then put the
    caller's settings back; without, change nothing.

    On CUDA, a few kernels (scatter-adds in some backward passes, cuDNN's fastest convolution
    algorithms) add in an order that changes from run to run. This turns on
    ``torch.use_deterministic_algorithms`` (an op that has no deterministic kernel warns
    rather than stops the run), cuDNN's deterministic mode without its benchmarking, and
    cuBLAS's fixed workspace when the environment sets none (torch reads that setting when
    the process first uses cuBLAS, so a process that did before must set it in its
    environment). The CPU's kernels are deterministic already. The settings are the
    process's own, so every thread shares them.
    """
    if not enabled:
        yield
        return
    cudnn = torch.backends.cudnn
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        cudnn.deterministic,
        cudnn.benchmark,
    )
    variable, value = _CUBLAS_WORKSPACE
    set_workspace = variable not in os.environ
    if set_workspace:
        os.environ[variable] = value
    torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        cudnn.deterministic, cudnn.benchmark = saved[2], saved[3]
        if set_workspace:
            os.environ.pop(variable, None)
