"""Uncertainty metrics, each a `torchmetrics.Metric` updated batch by batch.

Every metric takes ``update(sample_probs, targets)``: (B, S, C) per-sample softmax
probabilities (S = 1 for a deterministic model) and (B,) class targets; the OOD metrics take
(B,) ``is_ood`` flags instead of targets. All compute in float64 and return a 0-dim tensor.

- Classification: `Accuracy` (Acc), `NegativeLogLikelihood` (NLL), `BrierScore` (Brier),
  `PredictiveEntropy` (Entropy), `MutualInformation` (MI).
- Calibration: `ExpectedCalibrationError` (ECE), `AdaptiveCalibrationError` (aECE),
  `MaximumCalibrationError` (MCE).
- Selective classification: `AURC`, `AUGRC`, `CoverageAtRisk` (Cov@5Risk),
  `RiskAtCoverage` (Risk@80Cov), all from `risk_coverage_curve`.
- OOD detection: `OODAUROC` (AUROC), `OODAveragePrecision` (AUPR), `OODFalsePositiveRate`
  (FPR95), ranking images by `ood_score`, one of `OOD_SCORES`.

Put them in a ``MetricCollection(..., compute_groups=False)``: with compute groups on,
torchmetrics shares the state of metrics whose states match after the first batch, and
several of these keep states of the same names.
"""

from __future__ import annotations

from zoo.metrics.calibration import (
    AdaptiveCalibrationError,
    ExpectedCalibrationError,
    MaximumCalibrationError,
)
from zoo.metrics.classification import (
    Accuracy,
    BrierScore,
    MutualInformation,
    NegativeLogLikelihood,
    PredictiveEntropy,
)
from zoo.metrics.ood import (
    OODAUROC,
    OODAveragePrecision,
    OODFalsePositiveRate,
    ood_score,
)
from zoo.metrics.selective import AUGRC, AURC, CoverageAtRisk, RiskAtCoverage, risk_coverage_curve
from zoo.options import OOD_SCORES

__all__ = [
    "AUGRC",
    "AURC",
    "OODAUROC",
    "OOD_SCORES",
    "Accuracy",
    "AdaptiveCalibrationError",
    "BrierScore",
    "CoverageAtRisk",
    "ExpectedCalibrationError",
    "MaximumCalibrationError",
    "MutualInformation",
    "NegativeLogLikelihood",
    "OODAveragePrecision",
    "OODFalsePositiveRate",
    "PredictiveEntropy",
    "RiskAtCoverage",
    "ood_score",
    "risk_coverage_curve",
]
