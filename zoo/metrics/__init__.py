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

from typing import Any

from zoo.options import OOD_SCORES

# Each name and the module that defines it. They are imported on first use: the metrics need
# torchmetrics, which takes seconds to import, and what only names or prints metrics (`zoo
# list`, `zoo info`, reports and cards) reads `zoo.metrics.suite`'s table without them.
_DEFINED_IN = {
    "Accuracy": "classification",
    "BrierScore": "classification",
    "MutualInformation": "classification",
    "NegativeLogLikelihood": "classification",
    "PredictiveEntropy": "classification",
    "AdaptiveCalibrationError": "calibration",
    "ExpectedCalibrationError": "calibration",
    "MaximumCalibrationError": "calibration",
    "AUGRC": "selective",
    "AURC": "selective",
    "CoverageAtRisk": "selective",
    "RiskAtCoverage": "selective",
    "risk_coverage_curve": "selective",
    "OODAUROC": "ood",
    "OODAveragePrecision": "ood",
    "OODFalsePositiveRate": "ood",
    "ood_score": "ood",
}

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


def __getattr__(name: str) -> Any:
    if name not in _DEFINED_IN:
        raise AttributeError(f"module 'zoo.metrics' has no attribute {name!r}")
    from zoo.metrics import calibration, classification, ood, selective

    modules = {
        "calibration": calibration,
        "classification": classification,
        "ood": ood,
        "selective": selective,
    }
    value = globals()[name] = getattr(modules[_DEFINED_IN[name]], name)  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(globals()))
