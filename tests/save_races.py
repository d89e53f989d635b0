"""Kills and races against save_pretrained, run as a script by tests/test_pretrained.py.

    python tests/save_races.py FOLDER

It runs `kills` in FOLDER/kills (a save killed at each of its steps in turn) and `races` in
FOLDER/races (two saves at once, and loads during saves). Each save runs in a process forked
from this one (torch imported once, no thread pool started before the fork), and this process
checks the folder after each kill or race. It prints one JSON object: for each of the two,
{"rounds": N, "failures": [what went wrong, ...]}.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)  # no OpenMP pool to inherit across fork

import zoo  # noqa: E402
from zoo.atomic import sha256_hex  # noqa: E402
from zoo.pretrained import weights_bytes  # noqa: E402

_STEPS = ("replace", "fsync", "unlink")


def model(seed: int) -> zoo.ZooModel:
    torch.manual_seed(seed)
    return zoo.create_model("lenet")


def identity(folder: Path) -> str | None:
    """The sha256 of the weights the folder loads as, or None if it does not load."""
    try:
        return sha256_hex(weights_bytes(zoo.load(folder)))
    except zoo.ZooError:
        return None


def save_and_die_at(folder: Path, saved: zoo.ZooModel, step: int) -> bool:
    """Save in a child that is killed at its ``step``-th file-system call (rename, fsync or
    unlink); True if the save finished before that step."""
    child = os.fork()
    if child == 0:
        calls = 0
        for name in _STEPS:
            real = getattr(os, name)

            def crashing(*args: object, _real=real, **kwargs: object) -> object:
                nonlocal calls
                calls += 1
                if calls == step:
                    os.kill(os.getpid(), signal.SIGKILL)
                return _real(*args, **kwargs)

            setattr(os, name, crashing)
        saved.save_pretrained(folder)
        os._exit(0)
    _, status = os.waitpid(child, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def kills(folder: Path) -> dict[str, object]:
    """Save models 1, 2, 3, ... over each other, killing save k at its step k, k + 1, ...
    until it finishes; after every kill the folder must load as the old or the new model."""
    failures: list[str] = []
    model(0).save_pretrained(folder)
    held, rounds = identity(folder), 0
    for seed in range(1, 4):
        new = model(seed)
        new_identity = sha256_hex(weights_bytes(new))
        for step in range(1, 100):
            rounds += 1
            finished = save_and_die_at(folder, new, step)
            found = identity(folder)
            if found not in (held, new_identity):
                failures.append(f"model {seed} killed at step {step}: the folder does not load")
            held = found if found is not None else held
            if finished:
                break
        if held != new_identity:
            failures.append(f"model {seed}: the finished save does not load as the new model")
    leftovers = sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
    if leftovers:
        failures.append(f"files left after the last save finished: {leftovers}")
    return {"rounds": rounds, "failures": failures}


def races(folder: Path) -> dict[str, object]:
    """Two processes save different models into one folder at once, 25 times; the folder must
    load as one of them after each. Then one process saves over and over while this one
    loads: every load must succeed."""
    failures: list[str] = []
    first, second = model(1), model(2)
    both = {sha256_hex(weights_bytes(first)), sha256_hex(weights_bytes(second))}
    rounds = 25
    for round_number in range(rounds):
        start = time.monotonic() + 0.05
        children = []
        for saved in (first, second):
            child = os.fork()
            if child == 0:
                while time.monotonic() < start:
                    pass
                try:
                    saved.save_pretrained(folder)
                finally:
                    os._exit(0)
            children.append(child)
        for child in children:
            os.waitpid(child, 0)
        if identity(folder) not in both:
            failures.append(f"race {round_number}: the folder does not load as either model")
    writer = os.fork()
    if writer == 0:
        for index in range(40):
            (first if index % 2 else second).save_pretrained(folder)
        os._exit(0)
    loads = 0
    while os.waitpid(writer, os.WNOHANG) == (0, 0):
        loads += 1
        if identity(folder) not in both:
            failures.append(f"load {loads} during saves failed")
    return {"rounds": rounds + loads, "failures": failures}


if __name__ == "__main__":
    root = Path(sys.argv[1])
    print(json.dumps({"kills": kills(root / "kills"), "races": races(root / "races")}))
