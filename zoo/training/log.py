"""The training log, ``train_log.jsonl``: one JSON line per finished epoch, as `zoo train`
writes it; reading it back checked (a log may come from a Hub repository), and its summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.atomic import atomic_write_bytes
from zoo.errors import CheckpointError
from zoo.files import read_file
from zoo.limits import MAX_LOG_BYTES
from zoo.pretrained import LOG_NAME


def write_log(log: list[dict[str, Any]], folder: Path) -> None:
    """Rewrite train_log.jsonl with one JSON line per finished epoch."""
    lines = "".join(json.dumps(record, allow_nan=False) + "\n" for record in log)
    atomic_write_bytes(folder / LOG_NAME, lines.encode("utf-8"))


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a train_log.jsonl, one per finished epoch, each checked to hold what
    `summarize_log` reads (a log may come from a Hub repository).

    Raises:
        CheckpointError: the file cannot be read, is larger than `MAX_LOG_BYTES`, or is not
            such a log.
    """
    try:
        text = read_file(path, MAX_LOG_BYTES).decode("utf-8")
        records = [json.loads(line) for line in text.splitlines()]
    except (OSError, ValueError, RecursionError) as error:
        raise CheckpointError(path, f"is not a training log of zoo train ({error})") from None
    problem = log_problem(records)
    if problem:
        raise CheckpointError(path, problem)
    return records


_LONGEST_RUN_S = 366 * 24 * 3600
_RECORD_FIELDS = {"device": str, "hardware": str, "torch": str, "compiled": bool}


def log_problem(records: list[Any]) -> str | None:
    """What keeps ``records`` from being the log `zoo train` writes, if anything."""
    for number, record in enumerate(records, start=1):
        problem = _record_problem(record)
        if problem:
            return f"line {number} is not a zoo train record: {problem}"
    return None


def _record_problem(record: object) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    seconds = record.get("elapsed_seconds")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "'elapsed_seconds' must be a number"
    if not 0 <= seconds <= _LONGEST_RUN_S:
        return "'elapsed_seconds' must be from 0 to a year"
    for key, kind in _RECORD_FIELDS.items():
        if not isinstance(record.get(key), kind):
            return f"'{key}' must be a JSON {kind.__name__}"
    if not isinstance(record.get("amp"), (str, type(None))):
        return "'amp' must be a string or null"
    if not isinstance(record.get("deterministic", False), bool):
        return "'deterministic' must be a JSON bool"
    return None


def summarize_log(log: list[dict[str, Any]]) -> dict[str, Any]:
    """Epochs, time, device and software of a training run, from its log (as `read_log`
    checks it); {} when empty."""
    if not log:
        return {}
    last = log[-1]
    return {
        "epochs": len(log),
        "seconds": round(last["elapsed_seconds"], 1),
        "device": last["device"],
        "hardware": last["hardware"],
        "torch": last["torch"],
        "amp": last["amp"],
        "compiled": last["compiled"],
        "deterministic": last.get("deterministic", False),
    }


def read_folder_training(folder: Path) -> dict[str, Any] | None:
    """The summary of ``folder``'s training log (see `summarize_log`); None when it has none."""
    path = folder / LOG_NAME
    return summarize_log(read_log(path)) if path.exists() else None
