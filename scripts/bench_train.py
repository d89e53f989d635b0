"""Time one training epoch of the seed recipes in zoo and of the TorchUncertainty tutorials.

The seed recipes restate two TorchUncertainty tutorials in zoo's terms: "Training a LeNet with
Monte-Carlo Dropout" (recipes/seed_mc_dropout.toml: dropout 0.5, SGD lr 0.05, momentum 0.9,
weight decay 5e-4, batch 512) and "Train a Bayesian Neural Network in Three Minutes"
(recipes/seed_bayesian.toml: Adam lr 1e-3, batch 128, ELBO with 3 weight samples and KL weight
1/50000). This script trains each for one epoch on the CPU, both ways, in the same run:

- zoo: one `zoo.training.train` call per recipe, into a fresh temporary folder. From the line
  train_log.jsonl records for epoch 1 it takes "train_seconds", the training pass over 55,000
  images, and "seconds", which adds the validation pass over the 5,000 held out (16 samples
  per image). Neither counts reading the data nor the final evaluation; the wall time of the
  whole call, which adds those two (the evaluation: MNIST test then FashionMNIST test, 16
  samples per image), is shown too.
- TU, when the optional package torch-uncertainty can be imported: the tutorial's model, loss
  and optimiser in a `ClassificationRoutine`, fitted for one epoch by a Lightning ``Trainer``
  with validation, checkpoints, logging and progress bars off, so that it trains only. The
  time is that of the whole ``Trainer.fit`` call, timed from outside: it includes the
  `MNISTDataModule`'s ``prepare_data`` and ``setup`` (reading the same files) and starting its
  loader worker, and its epoch covers all 60,000 training images.

Two ratios are printed: TU / zoo training pass, the like-for-like one (neither side
validates), and TU / zoo epoch, where the zoo also pays for its validation pass. The zoo
trains on 5,000 fewer images (held out for validation), which leans the ratios its way by
about 9%; reading the data and starting the loader worker, in the TU figure only, also lean
its way.

Where the tutorials changed between TorchUncertainty releases (batch size, learning rate, KL
weight), the values above, those of the seed recipes, are used. Other choices:

- the MC-dropout tutorial's optimiser comes from ``optim_cifar10_resnet18``; in 0.13.0 that
  is SGD with lr 0.1, Nesterov momentum and a step schedule that first moves at epoch 25, so
  here a plain ``torch.optim.SGD`` with the recipe's values stands in for it (the same work per
  step);
- the datamodule keeps its default training transform (a random 28-pixel crop of the image
  padded by 4, as in the tutorials), where the recipes do not augment;
- it runs one loader worker, the datamodule's default (recent tutorials ask for 8, on a GPU
  machine), and does not pin memory, which the CPU does not use.

With the project's .venv only the zoo half runs; a venv that also holds torch-uncertainty
(see TU_INSTALL in _torch_uncertainty.py) runs both:

    python scripts/bench_train.py --data-dir DIR [--only mc_dropout|bayesian]

``--ensemble`` times something else: one epoch of recipes/deep_ensemble_lenet_mnist.toml (its
M members trained in one batched pass), against its M members trained one after another as
plain LeNets, each by recipes/lenet_mnist.toml with the member's own seed, which is the same
training (tests/test_ensemble.py checks that the weights agree). Both sides are timed by the
"train_seconds" of epoch 1, and the ratio is members one after another / ensemble:

    python scripts/bench_train.py --ensemble --data-dir DIR

For a quick check, ``--tu-only --limit-train-batches 3`` fits TU on 3 batches, and
``--zoo-only`` skips TU; zoo's trainer always runs whole epochs. The data root has
torchvision's layout (``<root>/MNIST/raw/*``, ``<root>/FashionMNIST/raw/*``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from _torch_uncertainty import quiet_lightning, torch_uncertainty_version

import zoo
from zoo.data import data_root
from zoo.pretrained import LOG_NAME
from zoo.training import member_seed, read_recipe, train

RECIPE_DIR = Path(__file__).resolve().parents[1] / "recipes"
RECIPES = {"mc_dropout": "seed_mc_dropout.toml", "bayesian": "seed_bayesian.toml"}
ONLY = {"mc_dropout": ("mc_dropout",), "bayesian": ("bayesian",), "both": tuple(RECIPES)}
SEED = 0


# --- zoo -------------------------------------------------------------------------------------


@dataclass
class ZooTiming:
    """Seconds of zoo's first training pass, of its whole first epoch (training + validation),
    and of the whole `train` call."""

    train: float
    epoch: float
    whole: float


def zoo_epoch(name: str, data_dir: Path) -> ZooTiming:
    """Train the seed recipe ``name`` for its one epoch in a fresh temporary folder."""
    recipe = read_recipe(RECIPE_DIR / RECIPES[name])
    with tempfile.TemporaryDirectory(prefix="bench_train_") as folder:
        out = Path(folder) / recipe.name
        start = time.perf_counter()
        train(recipe, out, device="cpu", data_dir=data_dir, progress=False)
        whole = time.perf_counter() - start
        first_epoch = json.loads((out / LOG_NAME).read_text(encoding="utf-8").splitlines()[0])
    return ZooTiming(train=first_epoch["train_seconds"], epoch=first_epoch["seconds"], whole=whole)


def train_seconds(recipe: Any, data_dir: Path) -> float:
    """The "train_seconds" of one epoch of ``recipe``, in a fresh temporary folder."""
    with tempfile.TemporaryDirectory(prefix="bench_train_") as folder:
        out = Path(folder) / recipe.name
        train(recipe.replace(epochs=1), out, device="cpu", data_dir=data_dir, progress=False)
        return json.loads((out / LOG_NAME).read_text(encoding="utf-8").splitlines()[0])[
            "train_seconds"
        ]


def ensemble_against_members(data_dir: Path) -> None:
    """One epoch of the ensemble recipe, then of each member trained alone, and the ratio."""
    ensemble = read_recipe(RECIPE_DIR / "deep_ensemble_lenet_mnist.toml")
    members = ensemble.model.kwargs["members"]
    lenet = read_recipe(RECIPE_DIR / "lenet_mnist.toml")
    print(f"cpu, {torch.get_num_threads()} threads, torch {torch.__version__}; one epoch each")
    together = train_seconds(ensemble, data_dir)
    print(f"deep_ensemble_lenet_mnist.toml, {members} members in one pass: {together:.2f} s")
    alone = []
    for member in range(members):
        seconds = train_seconds(lenet.replace(seed=member_seed(ensemble.seed, member)), data_dir)
        alone.append(seconds)
        print(f"  member {member} alone (lenet_mnist.toml, its seed): {seconds:.2f} s")
    print(
        f"members one after another: {sum(alone):.2f} s, {sum(alone) / together:.2f}x the "
        "ensemble's epoch"
    )


# --- TorchUncertainty -------------------------------------------------------------------------


def tu_mc_dropout_routine() -> tuple[Any, int]:
    """The MC-dropout tutorial's routine (LeNet, dropout 0.5, 16 estimators) and batch size."""
    from torch import nn, optim
    from torch_uncertainty.methods import mc_dropout
    from torch_uncertainty.models.classification.lenet import lenet
    from torch_uncertainty.routines import ClassificationRoutine

    core = lenet(in_channels=1, num_classes=10, dropout_rate=0.5)
    model = mc_dropout(core, num_estimators=16, last_layer=False)
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    routine = ClassificationRoutine(
        model, num_classes=10, loss=nn.CrossEntropyLoss(), optim_recipe=optimizer, is_ensemble=True
    )
    return routine, 512


def tu_bayesian_routine() -> tuple[Any, int]:
    """The Bayesian tutorial's routine (Bayesian LeNet, ELBO over 3 samples) and batch size."""
    from torch import nn, optim
    from torch_uncertainty.losses import ELBOLoss
    from torch_uncertainty.models.classification.lenet import bayesian_lenet
    from torch_uncertainty.routines import ClassificationRoutine

    model = bayesian_lenet(in_channels=1, num_classes=10)
    loss = ELBOLoss(model, inner_loss=nn.CrossEntropyLoss(), kl_weight=1 / 50000, num_samples=3)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    routine = ClassificationRoutine(
        model, num_classes=10, loss=loss, optim_recipe=optimizer, is_ensemble=True
    )
    return routine, 128


TU_ROUTINES = {"mc_dropout": tu_mc_dropout_routine, "bayesian": tu_bayesian_routine}


def tu_epoch(name: str, args: argparse.Namespace) -> float:
    """Seconds of one ``Trainer.fit`` epoch of tutorial ``name``, datamodule setup included."""
    from lightning.pytorch import Trainer
    from torch_uncertainty.datamodules import MNISTDataModule

    torch.manual_seed(SEED)
    routine, batch_size = TU_ROUTINES[name]()
    datamodule = MNISTDataModule(
        root=args.data_dir,
        batch_size=batch_size,
        num_workers=args.tu_workers,
        pin_memory=False,  # nothing to pin for on the CPU
        persistent_workers=args.tu_workers > 0,
    )
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=args.limit_train_batches,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(routine, datamodule=datamodule)
    return time.perf_counter() - start


# --- report -----------------------------------------------------------------------------------


def print_header(args: argparse.Namespace, tu_version: str | None) -> None:
    """Device, threads and versions, and what each side's seconds cover."""
    print(
        f"cpu, {torch.get_num_threads()} threads, torch {torch.__version__}; data {args.data_dir}"
    )
    if not args.tu_only:
        print(
            f"zoo {zoo.__version__}: train = train_log.jsonl 'train_seconds' of epoch 1; epoch "
            "= its 'seconds' (training + validation); whole = the train() call (adds data "
            "loading, final evaluation)"
        )
    if tu_version:
        batches = args.limit_train_batches or "all"
        print(
            f"TU: {tu_version}: epoch = Trainer.fit (datamodule setup included, no "
            f"validation), loader workers {args.tu_workers}, training batches {batches}"
        )
    print(
        f"{'recipe':<11} {'zoo train':>9} {'zoo epoch':>9} {'zoo whole':>9} {'TU epoch':>9} "
        f"{'TU/train':>8} {'TU/epoch':>8}"
    )


def print_row(name: str, zoo_timing: ZooTiming | None, tu_seconds: float | None) -> None:
    def cell(seconds: float | None) -> str:
        return f"{seconds:9.2f}" if seconds is not None else f"{'-':>9}"

    def ratio(zoo_seconds: float | None) -> str:
        if zoo_seconds is None or tu_seconds is None:
            return f"{'-':>8}"
        return f"{tu_seconds / zoo_seconds:7.2f}x"

    times = [zoo_timing.train, zoo_timing.epoch, zoo_timing.whole] if zoo_timing else [None] * 3
    cells = " ".join(cell(seconds) for seconds in [*times, tu_seconds])
    print(f"{name:<11} {cells} {ratio(times[0])} {ratio(times[1])}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=data_root(),
        help="data root (default: $ZOO_DATA_DIR, else ~/.cache/zoo/data)",
    )
    parser.add_argument("--only", choices=ONLY, default="both", help="which recipes to time")
    sides = parser.add_mutually_exclusive_group()
    sides.add_argument("--zoo-only", action="store_true", help="time the zoo half only")
    sides.add_argument("--tu-only", action="store_true", help="time the TU half only")
    parser.add_argument(
        "--limit-train-batches",
        type=int,
        default=None,
        help="TU only: fit on N batches, for a quick check (default: the whole epoch)",
    )
    parser.add_argument("--tu-workers", type=int, default=1, help="MNISTDataModule's default")
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="time the ensemble recipe against its members trained one after another",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.ensemble:
        ensemble_against_members(args.data_dir)
        return
    tu_version = None if args.zoo_only else torch_uncertainty_version()
    if tu_version:
        quiet_lightning(r".*no logger configured")
    print_header(args, tu_version)
    for name in ONLY[args.only]:
        zoo_timing = None if args.tu_only else zoo_epoch(name, args.data_dir)
        tu_seconds = tu_epoch(name, args) if tu_version else None
        print_row(name, zoo_timing, tu_seconds)


if __name__ == "__main__":
    main()
