"""Top-label calibration: how far the confidence max p̄ is from the accuracy it comes with.

ECE and MCE bin the confidences into 15 equal-width bins (torchmetrics does the binning); aECE
uses 15 equal-mass bins, which hold about as many images each, so that the few images in the
sparse low-confidence bins of a good classifier cannot dominate it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor
from torchmetrics.classification import MulticlassCalibrationError

from zoo.metrics._inputs import TopLabelMetric, check_inputs, tie_averaged, top_label

BINS = 15
_BELOW_ONE = float(torch.nextafter(torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0)))


class _EqualWidthCalibrationError(MulticlassCalibrationError):
    """torchmetrics' top-label calibration error over 15 equal-width bins, fed float64 states."""

    _norm: ClassVar[str]

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes, n_bins=BINS, norm=self._norm)

    def update(self, sample_probs: Tensor, targets: Tensor) -> None:
        """Add a batch: (B, S, C) per-sample probabilities and (B,) class targets."""
        # torchmetrics' own update would round the confidences to float32; its binning and
        # compute keep the dtype of the states stored here.
        confidence, correct = top_label(*check_inputs(sample_probs, targets, self.num_classes))
        # torchmetrics bins with bucketize(right=True), which gives a confidence of exactly 1 a
        # 16th bin of its own; the largest float64 below 1 puts it in the 15th, [14/15, 1].
        self.confidences.append(confidence.clamp_max(_BELOW_ONE))
        self.accuracies.append(correct)


class ExpectedCalibrationError(_EqualWidthCalibrationError):
    """ECE: the top-label expected calibration error over 15 equal-width confidence bins.

    The sum over bins of |accuracy - mean confidence| in the bin, weighted by the fraction of
    the images that fall in it.

    Args:
        num_classes: C, the number of classes.

    References:
        Guo et al., "On Calibration of Modern Neural Networks", ICML 2017.
    """

    _norm = "l1"


class MaximumCalibrationError(_EqualWidthCalibrationError):
    """MCE: the largest |accuracy - mean confidence| over the 15 equal-width bins (empty bins 0).

    Args:
        num_classes: C, the number of classes.

    References:
        Naeini et al., "Obtaining Well Calibrated Probabilities Using Bayesian Binning", AAAI
        2015; Guo et al., "On Calibration of Modern Neural Networks", ICML 2017.
    """

    _norm = "max"


class AdaptiveCalibrationError(TopLabelMetric):
    """aECE: the ECE over 15 equal-mass bins instead of equal-width ones.

    The images are sorted by confidence and cut into 15 consecutive groups whose sizes differ
    by at most one, the larger ones first (``torch.tensor_split``); with fewer than 15 images,
    some groups are empty and are skipped.
    The result is the mean over groups of |accuracy - mean confidence|, weighted by each group's
    share of the images. Images of equal confidence may straddle two groups; each counts with
    the mean correctness of its tie group, so the order of ties does not change the result.
    NaN when no images were given.

    References:
        Nixon et al., "Measuring Calibration in Deep Learning", CVPR Workshops 2019 (adaptive
        bins); Mukhoti et al., "Calibrating Deep Neural Networks using Focal Loss", NeurIPS
        2020 (AdaECE, this top-label form).
    """

    higher_is_better = False

    def compute(self) -> Tensor:
        """The adaptive calibration error of all images given so far."""
        confidence, correct = self.outcomes()
        correct = tie_averaged(confidence, correct)
        order = confidence.argsort()
        groups = zip(
            confidence[order].tensor_split(BINS), correct[order].tensor_split(BINS), strict=True
        )
        # |mean accuracy - mean confidence| * size / N, summed over groups; empty ones add 0.
        gaps = [(accuracy.sum() - conf.sum()).abs() for conf, accuracy in groups]
        return torch.stack(gaps).sum() / len(confidence)
