"""`Prediction`: what every zoo model's ``predict`` returns, and how it is derived from logits."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from zoo.errors import InvalidInputError


@dataclass(frozen=True)
class Prediction:
    """The predictive distribution of a batch, with its uncertainty split in two.

    B is the batch size, S the number of stochastic samples (1 for a deterministic model) and C
    the number of classes. Entropies are in nats.

    Attributes:
        sample_probs: (B, S, C) softmax output of each sample.
        probs: (B, C) predictive distribution, the mean of ``sample_probs`` over S.
        log_probs: (B, C) log of ``probs``, computed stably from the logits (use it for the
            NLL: it stays finite where ``probs`` underflows to 0).
        entropy: (B,) total uncertainty, the entropy of ``probs``.
        aleatoric: (B,) expected entropy of the per-sample distributions (data uncertainty).
        mutual_information: (B,) ``entropy - aleatoric`` (model uncertainty), at least 0 and
            exactly 0 when S is 1.

    References:
        Depeweg et al., "Decomposition of Uncertainty in Bayesian Deep Learning for Efficient
        and Risk-sensitive Learning", ICML 2018.
    """

    sample_probs: Tensor
    probs: Tensor
    log_probs: Tensor
    entropy: Tensor
    aleatoric: Tensor
    mutual_information: Tensor

    def per_image(self, class_labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One JSON-ready summary per image, in batch order.

        Each holds the predicted class index and ``label``, its ``confidence`` (the predictive
        probability), ``entropy``, ``aleatoric`` and ``mutual_information`` in nats,
        ``votes``: the label each of the S samples would predict on its own, and
        ``probabilities``: the predictive probability of each class, in class order.
        """
        labels = class_labels or [str(index) for index in range(self.probs.shape[1])]
        confidence, predicted = self.probs.max(dim=-1)
        columns = (predicted, confidence, self.entropy, self.aleatoric, self.mutual_information)
        # One copy to the host per field, not one wait on the device per image and field.
        classes, confidences, entropies, aleatorics, informations = (
            column.tolist() for column in columns
        )
        votes = self.sample_probs.argmax(dim=-1).tolist()
        probabilities = self.probs.tolist()
        return [
            {
                "class": classes[i],
                "label": labels[classes[i]],
                "confidence": confidences[i],
                "entropy": entropies[i],
                "aleatoric": aleatorics[i],
                "mutual_information": informations[i],
                "votes": [labels[vote] for vote in votes[i]],
                "probabilities": probabilities[i],
            }
            for i in range(len(classes))
        ]

    @classmethod
    def from_logits(cls, logits: Tensor) -> Prediction:
        """Build the prediction from (B, S, C) logits.

        Raises:
            InvalidInputError: logits of another shape, or NaN or infinite ones: a prediction
                is never NaN.
        """
        if logits.dim() != 3:
            raise InvalidInputError(f"logits must have shape (B, S, C), got {tuple(logits.shape)}")
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        sample_log_probs = logits.log_softmax(dim=-1)
        if not torch.isfinite(sample_log_probs).all():  # NaN or infinite logits, or ones so
            raise InvalidInputError(  # far apart that a log-probability overflows
                "the model gives NaN or infinite outputs on these images, or outputs too large "
                "to turn into probabilities; check that its weights and normalisation are sane "
                "and that float images are normalised"
            )
        sample_probs = sample_log_probs.exp()
        log_probs = sample_log_probs.logsumexp(dim=1) - math.log(logits.shape[1])
        probs = log_probs.exp()
        entropy = -(probs * log_probs).sum(dim=-1)
        aleatoric = -(sample_probs * sample_log_probs).sum(dim=-1).mean(dim=1)
        return cls(
            sample_probs=sample_probs,
            probs=probs,
            log_probs=log_probs,
            entropy=entropy,
            aleatoric=aleatoric,
            mutual_information=(entropy - aleatoric).clamp_min(0.0),
        )
