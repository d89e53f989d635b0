"""The metrics a zoo evaluation reports: their keys, groups, labels and how to build them.

Both `zoo.evaluate`, which computes them, and `zoo.report`, which prints them, read this one
table, so a metric is added or renamed in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

# The metric classes are looked up when built: importing them imports torchmetrics, which
# this table's other readers (reports, cards, `zoo info`) never need.
from zoo import metrics

if TYPE_CHECKING:
    from torchmetrics import Metric, MetricCollection

GROUP_TITLES = {
    "classification": "Classification",
    "calibration": "Calibration",
    "selective": "Selective classification",
    "ood": "OOD detection",
}


@dataclass(frozen=True)
class MetricSpec:
    """One reported metric.

    Attributes:
        group: a key of `GROUP_TITLES`.
        key: the metric's name in reports and JSON.
        label: its name in printed tables.
        percent: printed as a percentage (stored as a fraction either way).
        build: makes the metric from the number of classes and the OOD score name.
    """

    group: str
    key: str
    label: str
    percent: bool
    build: Callable[[int, str], Metric]


SUITE = (
    MetricSpec("classification", "acc", "Acc", True, lambda c, s: metrics.Accuracy(c)),
    MetricSpec("classification", "nll", "NLL", False, lambda c, s: metrics.NegativeLogLikelihood()),
    MetricSpec("classification", "brier", "Brier", False, lambda c, s: metrics.BrierScore()),
    MetricSpec(
        "classification", "entropy", "Entropy", False, lambda c, s: metrics.PredictiveEntropy()
    ),
    MetricSpec("classification", "mi", "MI", False, lambda c, s: metrics.MutualInformation()),
    MetricSpec("calibration", "ece", "ECE", True, lambda c, s: metrics.ExpectedCalibrationError(c)),
    MetricSpec(
        "calibration", "aece", "aECE", True, lambda c, s: metrics.AdaptiveCalibrationError()
    ),
    MetricSpec("calibration", "mce", "MCE", True, lambda c, s: metrics.MaximumCalibrationError(c)),
    MetricSpec("selective", "aurc", "AURC", True, lambda c, s: metrics.AURC()),
    MetricSpec("selective", "augrc", "AUGRC", True, lambda c, s: metrics.AUGRC()),
    MetricSpec(
        "selective", "cov@5risk", "Cov@5Risk", True, lambda c, s: metrics.CoverageAtRisk(0.05)
    ),
    MetricSpec(
        "selective", "risk@80cov", "Risk@80Cov", True, lambda c, s: metrics.RiskAtCoverage(0.8)
    ),
    MetricSpec("ood", "auroc", "AUROC", True, lambda c, s: metrics.OODAUROC(s)),
    MetricSpec("ood", "aupr", "AUPR", True, lambda c, s: metrics.OODAveragePrecision(s)),
    MetricSpec("ood", "fpr95", "FPR95", True, lambda c, s: metrics.OODFalsePositiveRate(s)),
)
SPECS = {spec.key: spec for spec in SUITE}


def build_collection(groups: tuple[str, ...], num_classes: int, score: str) -> MetricCollection:
    """The metrics of ``groups``, keyed by `MetricSpec.key`, updated together.

    Compute groups are off: torchmetrics would otherwise share state between metrics whose
    states happen to match after the first batch. Nor do the metrics gather states from other
    processes.
    """
    from torchmetrics import MetricCollection

    members = {spec.key: spec.build(num_classes, score) for spec in SUITE if spec.group in groups}
    for metric in members.values():
        # An evaluation measures the images this process saw. torchmetrics would otherwise
        # gather the states of every process in a torch.distributed group, waiting on ranks
        # that evaluate nothing (rank 0 of a training run evaluates alone).
        metric.distributed_available_fn = _alone
    return MetricCollection(members, compute_groups=False)


def _alone() -> bool:
    """What the metrics ask before gathering other processes' states: never."""
    return False
