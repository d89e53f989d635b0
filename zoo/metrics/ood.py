"""Out-of-distribution detection: how well an uncertainty score singles out unfamiliar images.

The metrics are updated with (B, S, C) per-sample probabilities and (B,) ``is_ood`` flags, 1 (or
True) for an out-of-distribution image, the positive class. Each image is ranked by a score
named in `zoo.options.OOD_SCORES`, higher meaning more likely out of distribution. Give both
kinds of images: without either, torchmetrics warns that the rates are meaningless (and FPR95
fails).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch import Tensor
from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision, BinaryROC

from zoo.errors import InvalidInputError
from zoo.metrics._inputs import (
    check_labels,
    check_sample_probs,
    entropy,
    float64_default,
    mutual_information,
    predictive_mean,
)

_SCORES: dict[str, Callable[[Tensor], Tensor]] = {
    "entropy": lambda sample_probs: entropy(predictive_mean(sample_probs)),
    "msp": lambda sample_probs: 1.0 - predictive_mean(sample_probs).amax(dim=-1),
    "mi": mutual_information,
}  # one per name in OOD_SCORES (zoo.options), which the command line offers without torch
TPR_TARGET = 0.95


def ood_score(sample_probs: Tensor, score: str = "entropy") -> Tensor:
    """The (B,) OOD score of each image, as the OOD metrics rank them (before rescaling).

    Args:
        sample_probs: (B, S, C) per-sample probabilities.
        score: "entropy", the entropy H(p̄) in nats (total uncertainty); "msp", 1 - max p̄,
            one minus the maximum softmax probability; or "mi", the mutual information in
            nats (model uncertainty, 0 when S = 1).

    References:
        Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution
        Examples in Neural Networks", ICLR 2017.
    """
    return _SCORES[_check_score(score)](check_sample_probs(sample_probs))


def _check_score(score: str) -> str:
    if score not in _SCORES:
        raise InvalidInputError(f"unknown OOD score {score!r}; choose one of {', '.join(_SCORES)}")
    return score


def _unit_score(sample_probs: Tensor, score: str) -> Tensor:
    """`ood_score` mapped monotonically into [0, 1]: nats divided by log C, their maximum."""
    scale = 1.0 if score == "msp" else math.log(sample_probs.shape[2])
    return (ood_score(sample_probs, score) / scale).clamp(0.0, 1.0)


class _OODMetric:
    """Mixin that feeds a torchmetrics binary curve metric each image's OOD score.

    torchmetrics takes a batch of scores with any value outside [0, 1] for logits and applies a
    sigmoid to that batch alone, which would put batches on different scales. The score is
    therefore rescaled into [0, 1] first (entropy and mutual information divided by log C, and
    clamped against rounding; MSP is there already), which leaves the ranking, and with it every
    metric here, unchanged.
    """

    def __init__(self, score: str = "entropy") -> None:
        score = _check_score(score)
        super().__init__()
        self.score = score

    def update(self, sample_probs: Tensor, is_ood: Tensor) -> None:
        """Add a batch: (B, S, C) per-sample probabilities and (B,) flags, 1 for OOD images."""
        sample_probs = check_sample_probs(sample_probs)
        is_ood = check_labels(is_ood, len(sample_probs), 2, "is_ood")
        super().update(_unit_score(sample_probs, self.score), is_ood)

    def compute(self) -> Any:
        """The metric, computed in float64 (torchmetrics divides its counts in float32)."""
        with float64_default():
            return super().compute()


class OODAUROC(_OODMetric, BinaryAUROC):
    """AUROC: the probability that an OOD image scores higher than an in-distribution one.

    Ties count one half. 0.5 is chance, 1 perfect separation.

    Args:
        score: the OOD score, one of `zoo.options.OOD_SCORES`.

    References:
        Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution
        Examples in Neural Networks", ICLR 2017.
    """


class OODAveragePrecision(_OODMetric, BinaryAveragePrecision):
    """AUPR: the average precision of flagging OOD images (the positives) by their score.

    The sum over thresholds of precision times the gain in recall; its chance level is the
    share of OOD images.

    Args:
        score: the OOD score, one of `zoo.options.OOD_SCORES`.

    References:
        Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution
        Examples in Neural Networks", ICLR 2017.
    """


class OODFalsePositiveRate(_OODMetric, BinaryROC):
    """FPR95: the share of in-distribution images flagged when 95% of OOD images are flagged.

    An image is flagged when its score reaches the threshold. Of the thresholds that flag at
    least 95% of the OOD images, the highest is used: the smallest false-positive rate among
    the ROC points with a true-positive rate of at least 0.95.

    Args:
        score: the OOD score, one of `zoo.options.OOD_SCORES`.

    References:
        Liang et al., "Enhancing the Reliability of Out-of-distribution Image Detection in
        Neural Networks", ICLR 2018.
    """

    higher_is_better = False

    def compute(self) -> Tensor:
        """The FPR at 95% TPR of all images given so far."""
        fpr, tpr, _ = super().compute()
        return fpr[tpr >= TPR_TARGET].min()
