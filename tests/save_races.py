"""Kills and races against save_pretrained, run as a script by tests/test_pretrained.py.

    python tests/save_races.py FOLDER

It runs, each in a folder of its own under FOLDER:

- ``kills``: saves killed at each of their steps in turn: before each rename, fsync and unlink,
  and in the middle of each file write;
- ``races``: two saves at once, then loads during saves;
- ``races_without_folder_locks``: the same where the file system cannot lock a folder, as on
  NFS.

Each save runs in a process forked from this one (torch imported once, no thread pool started
before the fork), and this process checks the folder after each kill or race. It prints one JSON
object: for each scenario, {"rounds": N, "overlapping": N, "failures": [what went wrong, ...]}.
"""

from __future__ import annotations

import builtins
import errno
import fcntl
import json
import os
import signal
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

torch.set_num_threads(1)  # no OpenMP pool to inherit across fork

import zoo  # noqa: E402
from zoo.atomic import sha256_hex  # noqa: E402
from zoo.pretrained import weights_bytes  # noqa: E402

_FILE_SYSTEM_CALLS = ("replace", "fsync", "unlink")


def model(seed: int, labels: list[str] | None = None) -> zoo.ZooModel:
    torch.manual_seed(seed)
    return zoo.create_model("lenet", class_labels=labels)


def identity(folder: Path) -> str | None:
    """The weights' sha256 and the labels the folder loads as, or None if it does not load."""
    try:
        loaded = zoo.load(folder)
    except zoo.ZooError:
        return None
    return f"{sha256_hex(weights_bytes(loaded))} {' '.join(loaded.class_labels)}"


def identity_of(saved: zoo.ZooModel) -> str:
    return f"{sha256_hex(weights_bytes(saved))} {' '.join(saved.class_labels)}"


def die_at_step(step: int) -> None:
    """In this (child) process, SIGKILL at the ``step``-th rename, fsync, unlink or file
    write; a write is killed halfway, with half of its bytes on disk."""
    calls = 0

    def count() -> bool:
        nonlocal calls
        calls += 1
        return calls == step

    for name in _FILE_SYSTEM_CALLS:
        real = getattr(os, name)

        def killing(*args: object, _real=real, **kwargs: object) -> object:
            if count():
                os.kill(os.getpid(), signal.SIGKILL)
            return _real(*args, **kwargs)

        setattr(os, name, killing)
    real_open = builtins.open

    def open_killing_mid_write(file: object, mode: str = "r", *args: object, **kwargs: object):
        handle = real_open(file, mode, *args, **kwargs)
        if "w" not in mode and "x" not in mode:
            return handle
        real_write = handle.write

        def write(data: bytes) -> int:
            if count():
                real_write(data[: len(data) // 2])
                handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real_write(data)

        handle.write = write
        return handle

    builtins.open = open_killing_mid_write


def run_and_exit(work: Callable[..., object], *arguments: object) -> None:
    """In a forked child: call ``work(*arguments)``, then exit at once, 0 if it went well,
    else 1 (never running on into the parent's code)."""
    try:
        work(*arguments)
    except BaseException:
        os._exit(1)
    os._exit(0)


def timed_save(saved: zoo.ZooModel, folder: Path, record: Path) -> None:
    """Save, and write when the save began and ended to ``record``."""
    began = time.monotonic()
    saved.save_pretrained(folder)
    record.write_text(f"{began} {time.monotonic()}")


def save_in_turn(models: tuple[zoo.ZooModel, ...], folder: Path, saves: int) -> None:
    for index in range(saves):
        models[index % len(models)].save_pretrained(folder)


def kills(folder: Path) -> dict[str, object]:
    """Save model 1, then model 1 again with other labels (the same weights), then model 2,
    killing each save at its step 1, 2, 3, ... until it finishes; after every kill the folder
    must load as the old or the new model."""
    failures: list[str] = []
    model(0).save_pretrained(folder)
    held, rounds = identity(folder), 0
    digits = [str(digit) for digit in range(10)]
    for number, new in enumerate((model(1), model(1, digits[::-1]), model(2)), start=1):
        for step in range(1, 100):
            rounds += 1
            child = os.fork()
            if child == 0:
                die_at_step(step)
                run_and_exit(new.save_pretrained, folder)
            _, status = os.waitpid(child, 0)
            found = identity(folder)
            if found not in (held, identity_of(new)):
                failures.append(f"save {number} killed at step {step}: no whole model loads")
            held = found if found is not None else held
            if os.WIFEXITED(status):
                break
        if held != identity_of(new):
            failures.append(f"save {number}: the finished save does not load as its model")
    leftovers = sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
    if leftovers:
        failures.append(f"files left after the last save finished: {leftovers}")
    return {"rounds": rounds, "overlapping": 0, "failures": failures}


def races(folder: Path) -> dict[str, object]:
    """Two processes save different models into one folder at once, 15 times; the folder must
    load as one of them after each. Then one process saves 20 times while this one
    loads: every load must succeed."""
    failures: list[str] = []
    first, second = model(1), model(2)
    both = {identity_of(first), identity_of(second)}
    rounds, overlapping = 15, 0
    times = folder.with_name(folder.name + "-times")
    for round_number in range(rounds):
        start = time.monotonic() + 0.05  # both children begin saving at this moment
        children = []
        for index, saved in enumerate((first, second)):
            child = os.fork()
            if child == 0:
                while time.monotonic() < start:
                    pass
                run_and_exit(timed_save, saved, folder, Path(f"{times}{index}"))
            children.append(child)
        for child in children:
            if os.waitpid(child, 0)[1] != 0:
                failures.append(f"race {round_number}: a save failed")
        (a_start, a_end), (b_start, b_end) = (
            map(float, Path(f"{times}{index}").read_text().split()) for index in (0, 1)
        )
        overlapping += a_start < b_end and b_start < a_end
        if identity(folder) not in both:
            failures.append(f"race {round_number}: the folder does not load as either model")
    writer = os.fork()
    if writer == 0:
        run_and_exit(save_in_turn, (second, first), folder, 20)
    loads = 0
    while os.waitpid(writer, os.WNOHANG) == (0, 0):
        loads += 1
        if identity(folder) not in both:
            failures.append(f"load {loads} during saves failed")
    return {"rounds": rounds + loads, "overlapping": overlapping, "failures": failures}


def without_folder_locks() -> None:
    """Make flock on a folder fail as NFS makes it fail: EBADF (a lock needs a file open for
    writing). Forked children inherit this."""
    real_flock = fcntl.flock

    def flock(descriptor: int, operation: int) -> None:
        if stat.S_ISDIR(os.fstat(descriptor).st_mode):
            raise OSError(errno.EBADF, "Bad file descriptor")
        real_flock(descriptor, operation)

    fcntl.flock = flock


if __name__ == "__main__":
    root = Path(sys.argv[1])
    outcomes = {"kills": kills(root / "kills"), "races": races(root / "races")}
    without_folder_locks()
    outcomes["races_without_folder_locks"] = races(root / "races-without-folder-locks")
    print(json.dumps(outcomes))
