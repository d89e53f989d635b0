"""Time `zoo.evaluate` against TorchUncertainty's test loop, on the same models and data.

Both stochastic LeNets (mc_dropout_lenet, bayesian_lenet; untrained, which costs the same to
run) are evaluated on the CPU with S samples per image on MNIST's 10,000 test images (ID) and
then FashionMNIST's 10,000 test images (OOD); --parts id times MNIST alone, --parts both times
each way. Both sides score OOD-ness by entropy (zoo: of the mean prediction; TU: the mean of
the per-sample entropies):

- zoo: one `zoo.evaluate` call, timed from outside, so it includes reading the test sets
  from the extracted IDX files, which every call does.
- TU, when the optional package torch-uncertainty can be imported: TorchUncertainty's own
  LeNet-5 of the same size, wrapped by its `mc_dropout` (S copies of the batch in one pass),
  or its `bayesian_lenet` (a `StochasticModel` that loops over S weight draws), tested by a
  `ClassificationRoutine` (``is_ensemble=True``, OOD metrics with ``eval_ood``) in one
  Lightning ``Trainer.test`` call, timed with the setup of its `MNISTDataModule`, which reads
  the same files. The stock datamodule takes FashionMNIST's 60,000 *training* images as OOD
  data; here it takes the test split, as zoo does.

Each variant runs once untimed first ("first": extracting the gzip files, lazy imports,
thread pools), then --repeats rounds in which the variants take turns, so that a drift in
machine speed hits all of them alike. It prints each variant's median and fastest run, and the
ratio TU time / zoo time for the same model on the same data (ID: MNIST alone; ID+OOD: MNIST
then FashionMNIST). The fastest run is the steadier figure when other processes compete for
the CPU. With the project's .venv only the zoo half runs; a venv that also holds
torch-uncertainty (see TU_INSTALL in _torch_uncertainty.py) runs both:

    .venv/bin/python scripts/bench_eval.py [--data-dir DIR] [--parts id+ood|id|both]

The data root has torchvision's layout (``<root>/MNIST/raw/*.gz``,
``<root>/FashionMNIST/raw/*.gz``); the first run extracts the gzip files there.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from _torch_uncertainty import quiet_lightning, torch_uncertainty_version

import zoo
from zoo.data import data_root

MODELS = ("mc_dropout_lenet", "bayesian_lenet")
PARTS = {"id+ood": (True,), "id": (False,), "both": (True, False)}

Run = Callable[[], float]


def parts_label(with_ood: bool) -> str:
    return "ID+OOD" if with_ood else "ID"


# --- zoo -------------------------------------------------------------------------------------


def zoo_run(name: str, with_ood: bool, args: argparse.Namespace) -> Run:
    """One timed `zoo.evaluate` call on a fresh, untrained ``name``."""
    model = zoo.create_model(name)

    def run() -> float:
        start = time.perf_counter()
        zoo.evaluate(
            model,
            dataset="mnist",
            ood="fashion_mnist" if with_ood else None,
            samples=args.samples,
            batch_size=args.zoo_batch_size,
            device="cpu",
            seed=args.seed,
            data_dir=args.data_dir,
            ood_score="entropy",
            progress=False,
        )
        return time.perf_counter() - start

    return run


# --- TorchUncertainty -------------------------------------------------------------------------


def tu_model(name: str, samples: int) -> torch.nn.Module:
    """TorchUncertainty's own LeNet-5 (1->6->16 convs, 256->120->84->10) for ``name``."""
    from torch_uncertainty.methods import mc_dropout
    from torch_uncertainty.models.classification.lenet import bayesian_lenet, lenet

    if name == "mc_dropout_lenet":
        core = lenet(in_channels=1, num_classes=10, dropout_rate=0.5)
        return mc_dropout(core, num_estimators=samples, last_layer=False, on_batch=True)
    return bayesian_lenet(in_channels=1, num_classes=10, num_samples=samples)


def tu_run(model: torch.nn.Module, with_ood: bool, args: argparse.Namespace) -> Run:
    """One timed ``Trainer.test`` of ``model`` in a fresh `ClassificationRoutine`."""
    from lightning.pytorch import Trainer
    from torch_uncertainty.routines import ClassificationRoutine

    def run() -> float:
        routine = ClassificationRoutine(
            model, num_classes=10, is_ensemble=True, eval_ood=with_ood, ood_criterion="entropy"
        )
        trainer = Trainer(
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
        )
        datamodule = tu_datamodule(with_ood, args)
        torch.manual_seed(args.seed)
        start = time.perf_counter()
        trainer.test(routine, datamodule=datamodule, verbose=False)
        return time.perf_counter() - start

    return run


def tu_datamodule(with_ood: bool, args: argparse.Namespace) -> Any:
    """TorchUncertainty's `MNISTDataModule`, with FashionMNIST's test split as OOD data."""
    from torch_uncertainty.datamodules import MNISTDataModule
    from torchvision.datasets import MNIST, FashionMNIST

    class MNISTWithFashionTest(MNISTDataModule):
        """Reads the two test splits only, as zoo does.

        The stock datamodule takes FashionMNIST's train split as OOD data, and its
        ``prepare_data`` loads both MNIST splits and that split on every ``Trainer.test``.
        """

        def prepare_data(self) -> None:
            """Nothing to fetch: ``setup`` extracts the local gzip files if need be."""

        def setup(self, stage: str | None = None) -> None:
            test = {"train": False, "download": True}
            self.test = MNIST(self.root, transform=self.test_transform, **test)
            if self.eval_ood:
                self.ood = FashionMNIST(self.root, transform=self.ood_transform, **test)

    return MNISTWithFashionTest(
        root=args.data_dir,
        batch_size=args.tu_batch_size,
        eval_ood=with_ood,
        num_workers=args.tu_workers,
        pin_memory=False,  # nothing to pin for on the CPU
        persistent_workers=args.tu_workers > 0,
    )


# --- timing -----------------------------------------------------------------------------------


@dataclass
class Timing:
    """The seconds of a variant's untimed first run and of its timed runs."""

    first: float
    runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def fastest(self) -> float:
        """The run least slowed by other processes: the figure to trust on a busy machine."""
        return min(self.runs)


def variants(name: str, args: argparse.Namespace, with_tu: bool) -> dict[tuple[str, str], Run]:
    """Every (side, data) variant of model ``name``, zoo and TU in turn for each data."""
    runs: dict[tuple[str, str], Run] = {}
    for with_ood in PARTS[args.parts]:
        runs["zoo", parts_label(with_ood)] = zoo_run(name, with_ood, args)
        if with_tu:
            model = tu_model(name, args.samples)
            runs["TU", parts_label(with_ood)] = tu_run(model, with_ood, args)
    return runs


def time_in_turns(runs: dict[tuple[str, str], Run], repeats: int) -> dict[tuple[str, str], Timing]:
    """One untimed round, then ``repeats`` rounds in which every run takes its turn."""
    timings = {key: Timing(run(), []) for key, run in runs.items()}
    for _ in range(repeats):
        for key, run in runs.items():
            timings[key].runs.append(run())
    return timings


def print_rows(name: str, timings: dict[tuple[str, str], Timing]) -> None:
    """One row per variant; TU rows get their ratio to zoo on the same data."""
    for (side, parts), timing in timings.items():
        ratio = ""
        if side == "TU":
            base = timings["zoo", parts]
            ratio = f"{timing.median / base.median:.2f}x ({timing.fastest / base.fastest:.2f}x)"
        print(
            f"{name:<17} {side:<4} {parts:<7} {timing.first:7.2f} {timing.median:7.2f} "
            f"{timing.fastest:7.2f}  {ratio}"
        )


def print_header(args: argparse.Namespace, tu_version: str | None) -> None:
    """What is timed, on what, with which versions, batch sizes and model sizes."""
    print(
        f"{args.samples} samples per image, cpu, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}; data ID: MNIST test (10,000 images) alone, ID+OOD: MNIST test "
        "then FashionMNIST test (10,000 images) as OOD"
    )
    sizes = param_counts(zoo.create_model, args.models)
    print(f"zoo {zoo.__version__}: zoo.evaluate, batch {args.zoo_batch_size}; parameters: {sizes}")
    if tu_version:
        sizes = param_counts(lambda name: tu_model(name, args.samples), args.models)
        print(
            f"TU: {tu_version}: Trainer.test, batch {args.tu_batch_size}, "
            f"loader workers {args.tu_workers}; parameters: {sizes}"
        )
    print(f"seconds per evaluation: the untimed first run, median and min of {args.repeats} runs")
    print(
        f"{'model':<17} {'side':<4} {'data':<7} {'first':>7} {'median':>7} {'min':>7}  TU/zoo (min)"
    )


def param_counts(build: Callable[[str], torch.nn.Module], names: list[str]) -> str:
    """The parameter counts of the models ``build`` makes, to check that both sides match."""
    counts = {name: sum(p.numel() for p in build(name).parameters()) for name in names}
    return ", ".join(f"{name} {count:,}" for name, count in counts.items())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=data_root(),
        help="data root (default: $ZOO_DATA_DIR, else ~/.cache/zoo/data)",
    )
    parser.add_argument("--parts", choices=PARTS, default="id+ood", help="data each run covers")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--zoo-batch-size", type=int, default=1000, help="zoo's default")
    parser.add_argument("--tu-batch-size", type=int, default=128, help="TU tutorials' value")
    parser.add_argument("--tu-workers", type=int, default=1, help="MNISTDataModule's default")
    parser.add_argument("--no-tu", action="store_true", help="time the zoo half only")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    tu_version = None if args.no_tu else torch_uncertainty_version()
    if tu_version:
        quiet_lightning(r"Metric `FPR95` will save")
    print_header(args, tu_version)
    for name in args.models:
        print_rows(name, time_in_turns(variants(name, args, tu_version is not None), args.repeats))


if __name__ == "__main__":
    main()
