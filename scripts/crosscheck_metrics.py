"""Compare zoo.metrics with TorchUncertainty's metrics on the very same predictions.

A check of the metric code, not of a model: one set of MNIST and FashionMNIST predictions (16
samples each) goes through the zoo's metric suite and through TorchUncertainty's
implementations of the same metrics, and the script prints both values side by side. Metrics
that TorchUncertainty does not have, or defines differently (its entropy and mutual
information are not these), are printed for the zoo alone. Expect differences of about 1e-8
(TorchUncertainty computes in float32) except for AURC and AUGRC, about 1e-6: TorchUncertainty
integrates the risk-coverage curve by the trapezoid rule over coverages 1/N..1 and breaks
confidence ties in sort order, where the zoo takes the mean of r(k) and splits ties evenly.

The model is a save_pretrained folder (--model), or by default an MC-dropout LeNet trained
here for one epoch, so that the figures are those of a classifier rather than of random
weights. Needs the ``bench`` extra:

    pip install -e '.[bench]'
    python scripts/crosscheck_metrics.py --data-dir DIR [--model FOLDER]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch_uncertainty.metrics as tu
from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision

import zoo
from zoo.data import data_root
from zoo.devices import seeded
from zoo.metrics.suite import SPECS, build_collection

SAMPLES = 16


def quickly_trained_model(data_dir: Path) -> zoo.ZooModel:
    """An MC-dropout LeNet after one epoch of Adam on the MNIST training set."""
    train = zoo.load_dataset("mnist", "train", data_dir)
    model = zoo.create_model("mc_dropout_lenet").train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for batch in torch.randperm(len(train)).split(256):
        logits = model(train.images[batch], samples=1).squeeze(1)
        loss = torch.nn.functional.cross_entropy(logits, train.targets[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def zoo_values(sample_probs: dict[bool, torch.Tensor], log_probs: torch.Tensor, targets) -> dict:
    """Every metric of the zoo's suite, as `zoo.evaluate` feeds them."""
    classifier = build_collection(("classification", "calibration", "selective"), 10, "entropy")
    classifier.update(sample_probs[False], targets, log_probs=log_probs)
    ood = build_collection(("ood",), 10, "entropy")
    for is_ood, probs in sample_probs.items():
        ood.update(probs, torch.full((len(probs),), int(is_ood)))
    return {key: float(value) for key, value in (classifier.compute() | ood.compute()).items()}


def torch_uncertainty_values(sample_probs: dict[bool, torch.Tensor], targets) -> dict:
    """TorchUncertainty's value of each metric it has, from the same predictive means."""
    probs = sample_probs[False].mean(dim=1)
    scores = torch.cat([zoo.metrics.ood_score(p, "entropy") for p in sample_probs.values()])
    is_ood = torch.cat([torch.full((len(p),), int(o)) for o, p in sample_probs.items()])
    unit_scores = scores / torch.log(torch.tensor(10.0))  # into [0, 1], as the zoo does
    metrics = {
        "nll": (tu.CategoricalNLL(), (probs, targets)),
        "brier": (tu.BrierScore(num_classes=10), (probs, targets)),
        "ece": (tu.CalibrationError("multiclass", num_bins=15, num_classes=10), (probs, targets)),
        "aece": (
            tu.AdaptiveCalibrationError("multiclass", num_bins=15, num_classes=10),
            (probs, targets),
        ),
        "aurc": (tu.AURC(), (probs, targets)),
        "augrc": (tu.AUGRC(), (probs, targets)),
        "cov@5risk": (tu.CovAt5Risk(), (probs, targets)),
        "risk@80cov": (tu.RiskAt80Cov(), (probs, targets)),
        "auroc": (BinaryAUROC(), (unit_scores, is_ood)),
        "aupr": (BinaryAveragePrecision(), (unit_scores, is_ood)),
        "fpr95": (tu.FPR95(pos_label=1), (scores, is_ood)),
    }
    values = {"acc": float((probs.argmax(dim=-1) == targets).double().mean())}
    for key, (metric, batch) in metrics.items():
        metric.update(*batch)
        values[key] = float(metric.compute())
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=data_root())
    parser.add_argument("--model", help="a save_pretrained folder (default: train one here)")
    args = parser.parse_args()
    with seeded(0):
        model = zoo.load(args.model) if args.model else quickly_trained_model(args.data_dir)
        test = zoo.load_dataset("mnist", "test", args.data_dir)
        fashion = zoo.load_dataset("fashion_mnist", "test", args.data_dir)
        prediction = model.predict(test.images, SAMPLES)
        sample_probs = {
            False: prediction.sample_probs.double(),
            True: model.predict(fashion.images, SAMPLES).sample_probs.double(),
        }
    ours = zoo_values(sample_probs, prediction.log_probs.double(), test.targets)
    theirs = torch_uncertainty_values(sample_probs, test.targets)
    print(f"{'metric':<11} {'zoo':>10} {'TorchUncertainty':>17} {'difference':>11}")
    for key in SPECS:
        other = theirs.get(key)
        compared = f"{other:17.6f} {ours[key] - other:11.2e}" if other is not None else ""
        print(f"{SPECS[key].label:<11} {ours[key]:10.6f} {compared}")


if __name__ == "__main__":
    main()
