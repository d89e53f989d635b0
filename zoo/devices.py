"""Choosing the device to run on (``auto`` picks CUDA, then Apple's MPS, then the CPU), and
seeding the random generators of every device."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator

import torch

from zoo.errors import DeviceError, InvalidInputError
from zoo.options import DEVICE_NAMES, SEED_RANGE


def select_device(name: str | torch.device = "auto") -> torch.device:
    """Return the device ``name`` asks for, checking that this machine has it.

    Args:
        name: "auto" (CUDA if available, else MPS, else CPU), "cpu", "cuda", "cuda:N" or "mps".

    Raises:
        DeviceError: an unknown device name, or a device this machine does not have.
    """
    if str(name) == "auto":
        return torch.device(_best_available())
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        choices = ", ".join(DEVICE_NAMES)
        raise DeviceError(f"unknown device {name!r}; choose one of {choices}") from None
    if device.type not in DEVICE_NAMES:
        raise DeviceError(f"unsupported device {name!r}; choose one of {', '.join(DEVICE_NAMES)}")
    if not _available(device):
        raise DeviceError(f"device {name!r} is not available on this machine; use --device auto")
    return device


def describe_device(device: torch.device) -> str:
    """A human-readable name, e.g. "cuda:0 (NVIDIA H100 80GB HBM3)" or "cpu (8 threads)"."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def describe_hardware() -> str:
    """The processor (and GPU, if any) this process runs on, for the training log."""
    cpu = _cpu_model() or platform.processor() or platform.machine()
    description = f"{cpu}, {os.cpu_count()} logical cores, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        description += f"; GPU {torch.cuda.get_device_name()}"
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


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's generators on every device for the block, then restore the caller's.

    ``torch.manual_seed`` reseeds the CPU, every CUDA device and MPS; each of their states is
    saved before and put back after, so that code around the block draws as if it never ran.
    """
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices):
        mps_state = torch.mps.get_rng_state() if torch.backends.mps.is_available() else None
        torch.manual_seed(check_seed(seed))
        try:
            yield
        finally:
            if mps_state is not None:
                torch.mps.set_rng_state(mps_state)
