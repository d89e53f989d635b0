"""Where a whole `zoo eval` process spends its time: the interpreter, each import, the work.

A user waits for the whole process, not for `zoo.evaluate`. This script starts --rounds fresh
Python processes that each run `zoo eval MODEL --ood none --json FILE` as the console script
does, after importing, one by one and timing each, what the command imports: torch,
torchvision (whose detection ops import torch._dynamo), torchmetrics (which imports
torchvision whenever it is installed) and the zoo's own modules. The command's own time is
split by the evaluation time its JSON records (forward passes and metrics) from the rest
(reading the model and the data, printing the table); exiting is what the process took after
the command returned. It prints each phase's median over the rounds. Once scripts/test or
scripts/run has set up .venv:

    .venv/bin/python scripts/bench_process.py --data-dir DATA [--model mc_dropout_lenet.mnist]
        [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run in each process: time.time() marks after each import and after the command, in a file.
CHILD = """
import json, sys, time
marks = {"started": time.time()}
import torch
marks["torch"] = time.time()
import torchvision
marks["torchvision"] = time.time()
import torchmetrics
marks["torchmetrics"] = time.time()
import zoo.cli, zoo.evaluation, zoo.plot
marks["zoo"] = time.time()
try:
    zoo.cli.main(sys.argv[2:], prog_name="zoo")
except SystemExit as exit:
    assert not exit.code, exit.code
marks["command"] = time.time()
with open(sys.argv[1], "w") as file:
    json.dump(marks, file)
"""
PHASES = (
    ("interpreter start", "launched", "started"),
    ("import torch", "started", "torch"),
    ("import torchvision", "torch", "torchvision"),
    ("import torchmetrics", "torchvision", "torchmetrics"),
    ("import the zoo's own modules", "torchmetrics", "zoo"),
    ("evaluation: forward passes and metrics", None, None),
    ("model, data and output", None, None),
    ("exit", "command", "exited"),
)


def one_round(model: str, data_dir: str, scratch: Path) -> dict[str, float]:
    marks_path, report = scratch / "marks.json", scratch / "eval.json"
    arguments = ["eval", model, "--ood", "none", "--data-dir", data_dir, "--json", str(report)]
    launched = time.time()
    finished = subprocess.run(
        [sys.executable, "-c", CHILD, str(marks_path), *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if finished.returncode:
        sys.exit(f"zoo eval failed:\n{finished.stderr[-2000:]}")
    marks = json.loads(marks_path.read_text()) | {"launched": launched, "exited": time.time()}
    evaluation = json.loads(report.read_text())["provenance"]["wall_time_s"]
    measured = {
        "evaluation: forward passes and metrics": evaluation,
        "model, data and output": marks["command"] - marks["zoo"] - evaluation,
    }
    phases = {
        label: marks[end] - marks[start] if start else measured[label]
        for label, start, end in PHASES
    }
    return phases | {"whole process": marks["exited"] - launched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="data root holding MNIST/raw")
    parser.add_argument("--model", default="mc_dropout_lenet.mnist")
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        one_round(arguments.model, arguments.data_dir, Path(scratch))  # extracts, warms caches
        rounds = [
            one_round(arguments.model, arguments.data_dir, Path(scratch))
            for _ in range(arguments.rounds)
        ]
    median = {label: statistics.median(r[label] for r in rounds) for label in rounds[0]}
    whole = median.pop("whole process")
    print(f"`zoo eval {arguments.model} --ood none`: median of {arguments.rounds} processes")
    print(f"{'phase':<40} {'seconds':>8} {'share':>6}")
    for label, seconds in median.items():
        print(f"{label:<40} {seconds:>8.2f} {seconds / whole:>6.0%}")
    print(f"{'whole process':<40} {whole:>8.2f}")


if __name__ == "__main__":
    main()
