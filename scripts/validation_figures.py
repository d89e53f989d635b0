"""Measure models on validation data only: the figures that chose the official recipes' settings.

    python scripts/validation_figures.py MODEL [MODEL ...] [--data-dir DIR]

MODEL is anything `zoo.load` takes: a `zoo train` output folder or a registered name. The
in-distribution images are the 5,000 MNIST training images that the recipes hold out; the
unseen ones for OOD detection are the first 10,000 FashionMNIST *training* images, so that no
test image is used. Sampling is seeded (16 samples, seed 0), as in `zoo eval`. To compare a
setting, train the recipe with it changed into another --out folder, then pass both folders.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import zoo
from zoo.data import load_dataset
from zoo.devices import seeded
from zoo.metrics import calibration, classification, ood

VALIDATION_SIZE = 5000
UNSEEN_SIZE = 10_000
SAMPLES = 16


def validation_figures(model: zoo.ZooModel, data_dir: Path | None) -> dict[str, float]:
    """Accuracy, NLL, ECE and OOD AUROC (entropy score) on validation data."""
    held_out = load_dataset("mnist", "train", data_dir)
    unseen = load_dataset("fashion_mnist", "train", data_dir).images[:UNSEEN_SIZE]
    images, targets = held_out.images[-VALIDATION_SIZE:], held_out.targets[-VALIDATION_SIZE:]
    metrics = {
        "acc": classification.Accuracy(model.num_classes),
        "nll": classification.NegativeLogLikelihood(),
        "ece": calibration.ExpectedCalibrationError(model.num_classes),
    }
    auroc = ood.OODAUROC("entropy")
    with seeded(0), torch.no_grad():
        for batch, labels in zip(images.split(1000), targets.split(1000), strict=True):
            probs = model.predict(batch, SAMPLES).sample_probs.double()
            for metric in metrics.values():
                metric.update(probs, labels)
            auroc.update(probs, torch.zeros(len(batch), dtype=torch.long))
        for batch in unseen.split(1000):
            probs = model.predict(batch, SAMPLES).sample_probs.double()
            auroc.update(probs, torch.ones(len(batch), dtype=torch.long))
    figures = {key: float(metric.compute()) for key, metric in metrics.items()}
    return figures | {"ood_auroc": float(auroc.compute())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("models", nargs="+", help="model folders or registered names")
    parser.add_argument("--data-dir", type=Path, help="data root (default: as zoo eval)")
    arguments = parser.parse_args()
    print(f"{'model':<40} {'val acc':>8} {'val NLL':>8} {'val ECE':>8} {'val OOD AUROC':>14}")
    for name in arguments.models:
        figures = validation_figures(zoo.load(name), arguments.data_dir)
        print(
            f"{name:<40} {figures['acc']:8.2%} {figures['nll']:8.4f} {figures['ece']:8.2%} "
            f"{figures['ood_auroc']:14.4f}"
        )


if __name__ == "__main__":
    main()
