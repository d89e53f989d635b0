"""What every metric does first: check a batch, then reduce its (B, S, C) samples per image.

B is the batch size, S the number of stochastic samples (1 for a deterministic model) and C the
number of classes. Everything is returned in float64, the precision all metrics compute in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from zoo.errors import InvalidInputError


def check_sample_probs(sample_probs: Tensor, num_classes: int | None = None) -> Tensor:
    """Return ``sample_probs`` in float64, else raise `InvalidInputError`.

    Args:
        sample_probs: (B, S, C) per-sample softmax probabilities, S >= 1 and C >= 2.
        num_classes: C that the metric was built for, or None to accept any C >= 2.
    """
    expected = "a floating tensor of shape (B, S, C) with S >= 1 and C >= 2"
    if num_classes is not None:
        expected += f" (C = {num_classes})"
    if not isinstance(sample_probs, Tensor):
        raise InvalidInputError(f"sample_probs must be {expected}, got {type(sample_probs)}")
    if not _is_sample_probs(sample_probs, num_classes):
        raise InvalidInputError(
            f"sample_probs must be {expected}, got shape {tuple(sample_probs.shape)} of "
            f"{sample_probs.dtype}"
        )
    if not torch.isfinite(sample_probs).all():
        raise InvalidInputError("sample_probs hold NaN or infinity; is the model's output finite?")
    return sample_probs.to(torch.float64)


def _is_sample_probs(sample_probs: Tensor, num_classes: int | None) -> bool:
    if not sample_probs.is_floating_point() or sample_probs.dim() != 3:
        return False
    _, samples, classes = sample_probs.shape
    return samples >= 1 and (classes >= 2 if num_classes is None else classes == num_classes)


def check_labels(labels: Tensor, batch_size: int, num_classes: int, name: str) -> Tensor:
    """Return ``labels`` as int64, else raise `InvalidInputError` naming them ``name``.

    Args:
        labels: (B,) integer (or bool) tensor of values in [0, num_classes).
        batch_size: B, the batch size of the probabilities they go with.
        num_classes: the number of valid label values.
        name: what the caller calls them ("targets", "is_ood"), for the message.
    """
    expected = f"an integer tensor of shape (B,) = ({batch_size},)"
    if not isinstance(labels, Tensor):
        raise InvalidInputError(f"{name} must be {expected}, got {type(labels)}")
    if labels.is_floating_point() or labels.is_complex() or tuple(labels.shape) != (batch_size,):
        raise InvalidInputError(
            f"{name} must be {expected}, got shape {tuple(labels.shape)} of {labels.dtype}"
        )
    labels = labels.long()
    if (labels < 0).any() or (labels >= num_classes).any():
        raise InvalidInputError(
            f"{name} must lie in [0, {num_classes}), got values from {labels.min().item()} "
            f"to {labels.max().item()}"
        )
    return labels


def check_inputs(
    sample_probs: Tensor, targets: Tensor, num_classes: int | None = None
) -> tuple[Tensor, Tensor]:
    """Check a batch of probabilities and class targets; return them as float64 and int64."""
    sample_probs = check_sample_probs(sample_probs, num_classes)
    targets = check_labels(targets, len(sample_probs), sample_probs.shape[2], "targets")
    return sample_probs, targets


def check_log_probs(log_probs: Tensor, sample_probs: Tensor) -> Tensor:
    """Return (B, C) ``log_probs`` that match (B, S, C) ``sample_probs`` in float64, else raise."""
    batch_size, _, classes = sample_probs.shape
    expected = f"a floating tensor of shape (B, C) = ({batch_size}, {classes})"
    if not isinstance(log_probs, Tensor):
        raise InvalidInputError(f"log_probs must be {expected}, got {type(log_probs)}")
    if not log_probs.is_floating_point() or tuple(log_probs.shape) != (batch_size, classes):
        raise InvalidInputError(
            f"log_probs must be {expected}, got shape {tuple(log_probs.shape)} of {log_probs.dtype}"
        )
    return log_probs.to(torch.float64)


def predictive_mean(sample_probs: Tensor) -> Tensor:
    """The (B, C) predictive distribution p̄: the mean of the S per-sample distributions."""
    return sample_probs.mean(dim=1)


def entropy(probs: Tensor) -> Tensor:
    """Entropy in nats of the distributions along the last dimension (0 log 0 counts as 0)."""
    return -torch.special.xlogy(probs, probs).sum(dim=-1)


def mutual_information(sample_probs: Tensor) -> Tensor:
    """(B,) H(p̄) - mean_s H(p_s), at least 0, and exactly 0 when S = 1."""
    expected_entropy = entropy(sample_probs).mean(dim=1)
    return (entropy(predictive_mean(sample_probs)) - expected_entropy).clamp_min(0.0)


def top_label(sample_probs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """(B,) confidence max p̄, and (B,) 1.0 where the prediction argmax p̄ is right, else 0.0."""
    confidence, prediction = predictive_mean(sample_probs).max(dim=-1)
    return confidence, prediction.eq(targets).to(torch.float64)


class TopLabelMetric(Metric):
    """Base of the metrics that need each image's confidence and correctness, over all images.

    It keeps two (N,) float64 states, ``confidences`` and ``accuracies`` (1.0 where right),
    named and filled as in the equal-width calibration errors.
    """

    is_differentiable = False
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("confidences", default=[], dist_reduce_fx="cat")
        self.add_state("accuracies", default=[], dist_reduce_fx="cat")

    def update(self, sample_probs: Tensor, targets: Tensor) -> None:
        """Add a batch: (B, S, C) per-sample probabilities and (B,) class targets."""
        confidence, correct = top_label(*check_inputs(sample_probs, targets))
        self.confidences.append(confidence)
        self.accuracies.append(correct)

    def outcomes(self) -> tuple[Tensor, Tensor]:
        """(N,) confidences and (N,) 1.0/0.0 correctness of every image seen so far."""
        return dim_zero_cat(self.confidences), dim_zero_cat(self.accuracies)


def tie_averaged(confidence: Tensor, values: Tensor) -> Tensor:
    """``values`` with each replaced by its mean over the images of exactly equal confidence.

    Metrics that sort images by confidence use it so that the order of tied images, which
    confidence cannot decide, does not change the result: the mean is the expected value over
    every order of a tie group.
    """
    _, group = confidence.unique(return_inverse=True)
    sizes = torch.bincount(group)
    return (torch.bincount(group, weights=values) / sizes)[group]


@contextmanager
def float64_default() -> Iterator[None]:
    """Make float64 torch's default dtype inside the block.

    torchmetrics' ROC and precision-recall curves divide integer counts, which gives the
    default dtype; inside this block their rates, and the areas under them, are float64.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
