"""Time a whole shift grid against one plain evaluation of the same model, side by side.

The rotation grid is 13 steps of the 10,000 MNIST test images, so it should cost about 13
evaluations of the unshifted test set (without OOD data), plus building the rotated sets once.
This script times both, taking turns, and prints the medians, their ratio, and how much of
the grid's time went into building the shifted sets (the corruptions' share is the larger):

    python scripts/bench_shift.py --data-dir DATA [--model mc_dropout_lenet.mnist]
        [--shift rotation] [--samples 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import zoo
from zoo.shift import SHIFTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--data-dir", help="data root holding MNIST/raw")
    parser.add_argument("--model", default="mc_dropout_lenet.mnist")
    parser.add_argument("--shift", choices=tuple(SHIFTS), default="rotation")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    arguments = parser.parse_args()
    model = zoo.load(arguments.model)
    common = {"samples": arguments.samples, "device": arguments.device}
    common["data_dir"] = arguments.data_dir
    zoo.evaluate(model, ood=None, **common)  # warm up: data read, kernels chosen
    plain, shifted, built = [], [], []
    for _ in range(arguments.rounds):
        started = time.perf_counter()
        zoo.evaluate(model, ood=None, **common)
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        report = zoo.evaluate(model, shift=arguments.shift, **common)
        shifted.append(time.perf_counter() - started)
        built.append(report.provenance["build_time_s"])
    steps = len(SHIFTS[arguments.shift].steps)
    one, grid = statistics.median(plain), statistics.median(shifted)
    print(
        f"{arguments.model}, {arguments.samples} samples, {arguments.device} "
        f"({torch.get_num_threads()} threads), median of {arguments.rounds} rounds"
    )
    print(f"one evaluation of the MNIST test set: {one:.2f} s")
    print(
        f"the {arguments.shift} grid, {steps} steps: {grid:.2f} s = {grid / one:.1f} "
        f"evaluations ({grid / one / steps:.2f} per step), of which building the sets "
        f"{statistics.median(built):.2f} s"
    )


if __name__ == "__main__":
    main()
