"""Classification metrics of the predictive distribution p̄: accuracy, NLL, Brier, entropy, MI.

Each is updated with (B, S, C) per-sample probabilities and (B,) class targets, and reduces
every batch to per-image values at once, so that no more than one batch of samples is held.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from zoo.metrics._inputs import (
    check_inputs,
    check_log_probs,
    entropy,
    mutual_information,
    predictive_mean,
)


class Accuracy(MulticlassAccuracy):
    """Fraction of images whose prediction, argmax p̄, is the target class.

    torchmetrics counts the hits; `compute` divides the counts in float64.

    Args:
        num_classes: C, the number of classes.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes, average="micro")

    def update(self, sample_probs: Tensor, targets: Tensor) -> None:
        """Add a batch: (B, S, C) per-sample probabilities and (B,) class targets."""
        sample_probs, targets = check_inputs(sample_probs, targets, self.num_classes)
        super().update(predictive_mean(sample_probs), targets)

    def compute(self) -> Tensor:
        """The accuracy (torchmetrics would divide in float32); NaN if no images were given."""
        hits, _, _, misses = self._final_state()
        return hits.sum().double() / (hits + misses).sum()


class _MeanOverImages(Metric):
    """Mean over images of a per-image value, kept as a float64 sum and an image count.

    `compute` returns NaN when no images were given.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def _add(self, values: Tensor) -> None:
        self.total += values.sum()
        self.images += len(values)

    def compute(self) -> Tensor:
        """The mean over all images given so far."""
        return self.total / self.images


class NegativeLogLikelihood(_MeanOverImages):
    """Mean over images of -log p̄[y], the log loss of the predictive distribution.

    Without ``log_probs`` the log of p̄ is taken stably from the samples, as the logsumexp over S
    of log p_s minus log S. That is still the log of probabilities rounded to the caller's
    dtype: a confidently wrong image whose target probability underflowed to 0 in every sample
    gives -log 0 = inf. Passing ``log_probs`` computed from the logits (`Prediction.log_probs`,
    by log-softmax and logsumexp) never rounds a probability, and keeps such an image finite.

    References:
        Gneiting & Raftery, "Strictly Proper Scoring Rules, Prediction, and Estimation", JASA
        2007.
    """

    def update(
        self, sample_probs: Tensor, targets: Tensor, log_probs: Tensor | None = None
    ) -> None:
        """Add a batch.

        Args:
            sample_probs: (B, S, C) per-sample probabilities.
            targets: (B,) class targets.
            log_probs: (B, C) log p̄ computed from the logits, used instead of ``sample_probs``.
        """
        sample_probs, targets = check_inputs(sample_probs, targets)
        if log_probs is None:
            log_probs = sample_probs.log().logsumexp(dim=1) - math.log(sample_probs.shape[1])
        else:
            log_probs = check_log_probs(log_probs, sample_probs)
        self._add(-log_probs.gather(1, targets[:, None]).squeeze(1))


class BrierScore(_MeanOverImages):
    """Mean over images of sum_c (p̄_c - onehot(y)_c)^2, summed (not averaged) over classes.

    It lies in [0, 2]; a uniform p̄ scores 1 - 1/C.

    References:
        Brier, "Verification of Forecasts Expressed in Terms of Probability", Monthly Weather
        Review 1950.
    """

    def update(self, sample_probs: Tensor, targets: Tensor) -> None:
        """Add a batch: (B, S, C) per-sample probabilities and (B,) class targets."""
        sample_probs, targets = check_inputs(sample_probs, targets)
        mean = predictive_mean(sample_probs)
        one_hot = torch.nn.functional.one_hot(targets, mean.shape[1]).to(mean.dtype)
        self._add((mean - one_hot).square().sum(dim=1))


class PredictiveEntropy(_MeanOverImages):
    """Mean over images of the entropy H(p̄) in nats: total uncertainty, from 0 to log C.

    Higher is not better or worse in itself (it should be low in distribution and high out of
    it); ``higher_is_better`` is False, as for a loss on in-distribution data.
    """

    def update(self, sample_probs: Tensor, targets: Tensor) -> None:
        """Add a batch: (B, S, C) per-sample probabilities and (B,) class targets (checked only)."""
        sample_probs, _ = check_inputs(sample_probs, targets)
        self._add(entropy(predictive_mean(sample_probs)))


class MutualInformation(_MeanOverImages):
    """Mean over images of max(0, H(p̄) - mean_s H(p_s)) in nats: model (epistemic) uncertainty.

    It is how much the S samples disagree, and exactly 0 when S = 1.

    References:
        Depeweg et al., "Decomposition of Uncertainty in Bayesian Deep Learning for Efficient
        and Risk-sensitive Learning", ICML 2018.
    """

    def update(self, sample_probs: Tensor, targets: Tensor) -> None:
        """Add a batch: (B, S, C) per-sample probabilities and (B,) class targets (checked only)."""
        sample_probs, _ = check_inputs(sample_probs, targets)
        self._add(mutual_information(sample_probs))
