"""Selective classification: the error rate left when the model abstains on its doubtful images.

Sort the N images by confidence max p̄, most confident first, and let r(k) be the error rate
among the k most confident: the risk at coverage k/N. Every metric here summarises this
risk-coverage curve, which `risk_coverage_curve` computes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from zoo.errors import InvalidInputError
from zoo.metrics._inputs import TopLabelMetric


def risk_coverage_curve(confidence: Tensor, errors: Tensor) -> tuple[Tensor, Tensor]:
    """The risk r(k), the error rate among the k most confident images, for k = 1..N.

    Ties in confidence: images of equal confidence cannot be ordered by it, so the curve must
    not depend on their input order. Inside a group of m equally confident images holding e
    errors, each counts as e/m of an error: when k takes j images of the group, the number of
    errors is (errors among the more confident images) + j * e / m. That is the expected count
    over a random order of the group; as r(k), AURC and AUGRC are linear in the counts, they
    equal their expectations over random tie-breaking too.

    Args:
        confidence: (N,) confidence of each image.
        errors: (N,) 1 (or True) where the image's prediction is wrong, else 0.

    Returns:
        (N,) float64 coverage k/N, and (N,) float64 risk r(k), for k = 1..N.

    References:
        Geifman & El-Yaniv, "Selective Classification for Deep Neural Networks", NeurIPS 2017.
    """
    confidence, errors = _check_curve_inputs(confidence, errors)
    order = confidence.argsort(descending=True)
    confidence, errors = confidence[order], errors[order]
    _, sizes = confidence.unique_consecutive(return_counts=True)  # tie groups, in order
    ends = sizes.cumsum(dim=0)
    starts = ends - sizes
    errors_before = torch.cat([errors.new_zeros(1), errors.cumsum(dim=0)])  # for k = 0..N
    group_errors = errors_before[ends] - errors_before[starts]
    group = torch.repeat_interleave(sizes)  # the tie group of each of the N positions
    k = torch.arange(1, len(errors) + 1, dtype=torch.float64)
    into_group = k - starts[group]
    counted = errors_before[starts[group]] + into_group * group_errors[group] / sizes[group]
    return k / len(errors), counted / k


def _check_curve_inputs(confidence: Tensor, errors: Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(confidence, Tensor) or confidence.dim() != 1:
        shape = tuple(confidence.shape) if isinstance(confidence, Tensor) else type(confidence)
        raise InvalidInputError(f"confidence must be a tensor of shape (N,), got {shape}")
    if not isinstance(errors, Tensor) or tuple(errors.shape) != tuple(confidence.shape):
        shape = tuple(errors.shape) if isinstance(errors, Tensor) else type(errors)
        raise InvalidInputError(
            f"errors must be a tensor of shape (N,) = {tuple(confidence.shape)}, got {shape}"
        )
    return confidence.to(torch.float64), errors.to(torch.float64)


class _SelectiveMetric(TopLabelMetric):
    """A summary of the risk-coverage curve of all images given so far."""

    def curve(self) -> tuple[Tensor, Tensor]:
        """(N,) coverage and (N,) risk, as `risk_coverage_curve` defines them."""
        confidence, correct = self.outcomes()
        return risk_coverage_curve(confidence, 1.0 - correct)


class AURC(_SelectiveMetric):
    """AURC: the area under the risk-coverage curve, the mean of r(k) over k = 1..N.

    0 for a classifier that is never wrong; NaN when no images were given.

    References:
        Geifman & El-Yaniv, "Selective Classification for Deep Neural Networks", NeurIPS 2017.
    """

    higher_is_better = False

    def compute(self) -> Tensor:
        """The AURC of all images given so far."""
        _, risk = self.curve()
        return risk.mean()


class AUGRC(_SelectiveMetric):
    """AUGRC: the area under the generalized risk-coverage curve.

    The mean over k = 1..N of (errors among the k most confident) / N: the share of all images
    that are both accepted and wrong. Unlike AURC, it does not let the few most confident
    images weigh the most. NaN when no images were given.

    References:
        Traub et al., "Overcoming Common Flaws in the Evaluation of Selective Classification
        Systems", NeurIPS 2024.
    """

    higher_is_better = False

    def compute(self) -> Tensor:
        """The AUGRC of all images given so far."""
        coverage, risk = self.curve()
        return (coverage * risk).mean()


class CoverageAtRisk(_SelectiveMetric):
    """Cov@Risk: the largest coverage k/N whose risk r(k) is at most ``risk``.

    NaN when no k qualifies (or no images were given).

    Args:
        risk: the highest acceptable error rate, in [0, 1]; 0.05 gives Cov@5Risk.

    References:
        Geifman & El-Yaniv, "Selective Classification for Deep Neural Networks", NeurIPS 2017.
    """

    higher_is_better = True

    def __init__(self, risk: float = 0.05) -> None:
        if not 0.0 <= risk <= 1.0:
            raise InvalidInputError(f"risk must be in [0, 1], got {risk!r}")
        super().__init__()
        self.risk = float(risk)

    def compute(self) -> Tensor:
        """The largest acceptable coverage of all images given so far."""
        coverage, risk = self.curve()
        acceptable = coverage[risk <= self.risk]
        return acceptable.max() if len(acceptable) else torch.tensor(math.nan, dtype=torch.float64)


class RiskAtCoverage(_SelectiveMetric):
    """Risk@Cov: the risk r(k) at k = ceil(``coverage`` * N).

    The error rate that remains when the least confident 1 - ``coverage`` of the images are
    rejected. NaN when no images were given.

    Args:
        coverage: the share of images to accept, in (0, 1]; 0.8 gives Risk@80Cov.

    References:
        Geifman & El-Yaniv, "Selective Classification for Deep Neural Networks", NeurIPS 2017.
    """

    higher_is_better = False

    def __init__(self, coverage: float = 0.8) -> None:
        if not 0.0 < coverage <= 1.0:
            raise InvalidInputError(f"coverage must be in (0, 1], got {coverage!r}")
        super().__init__()
        self.coverage = float(coverage)

    def compute(self) -> Tensor:
        """The risk at the chosen coverage of all images given so far."""
        _, risk = self.curve()
        accepted = math.ceil(self.coverage * len(risk))
        return risk[accepted - 1] if accepted else torch.tensor(math.nan, dtype=torch.float64)
