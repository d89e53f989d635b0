"""PNGs of evaluations: one evaluation's reliability, risk against coverage and OOD separation
(`plot_report`), several models' reliability and risk against coverage (`plot_comparison`),
and the figures of one or more models along a shift (`plot_shift`).

Needs the ``plot`` extra (matplotlib): ``pip install 'uncertainty-zoo[plot]'``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import torch

from zoo.atomic import atomic_write_bytes
from zoo.errors import InvalidInputError, MissingExtraError
from zoo.metrics.selective import risk_coverage_curve
from zoo.report import EvaluationReport, Outcomes
from zoo.shift import ShiftReport, format_step

RELIABILITY_BINS = 15
INSTALL_HINT = "pip install 'uncertainty-zoo[plot]'"


def require_matplotlib() -> None:
    """Raise `MissingExtraError` with the install command unless matplotlib is importable."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtraError(f"plots need matplotlib; install it with: {INSTALL_HINT}") from None


def plot_report(report: EvaluationReport, path: str | os.PathLike[str]) -> None:
    """Write ``report`` as a PNG with three panels, atomically.

    Panels: the reliability diagram (accuracy per confidence bin, 15 equal-width bins, against
    the diagonal of perfect calibration); the risk-coverage curve (error rate among the most
    confident images, as coverage grows); histograms of the OOD score of the test images and
    of the OOD images.
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    if report.outcomes is None:
        raise InvalidInputError("this report holds no per-image outcomes to plot")
    figure = Figure(figsize=(15, 4.5), layout="constrained")
    reliability, risk, scores = figure.subplots(1, 3)
    _reliability(reliability, report.outcomes)
    _risk_coverage(risk, report.outcomes)
    _score_histograms(scores, report)
    figure.suptitle(f"{report.provenance['model']}: {report.provenance['samples']} samples")
    _save(figure, path)


# The panels of a shift plot: a figure of each step, its title, and whether it is a fraction.
SHIFT_PANELS = (
    ("acc", "accuracy", True),
    ("ece", "ECE", True),
    ("nll", "NLL", False),
    ("confidence", "mean confidence", True),
)


def plot_comparison(reports: Sequence[EvaluationReport], path: str | os.PathLike[str]) -> None:
    """Write the reliability diagrams and risk-coverage curves of ``reports`` (one per model,
    on the same data) as a PNG with a line per model, atomically."""
    require_matplotlib()
    from matplotlib.figure import Figure

    if not reports or any(report.outcomes is None for report in reports):
        raise InvalidInputError("a comparison plot takes reports that hold per-image outcomes")
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    reliability, risk = figure.subplots(1, 2)
    for report in reports:
        name = report.provenance["model"]
        centres, accuracy = _reliability_points(report.outcomes)
        reliability.plot(centres.numpy(), accuracy.numpy(), marker="o", markersize=3, label=name)
        coverage, errors = risk_coverage_curve(report.outcomes.confidence, ~report.outcomes.correct)
        risk.plot(coverage.numpy(), 100 * errors.numpy(), label=name)
    reliability.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    reliability.set(
        xlabel="confidence", ylabel="accuracy", title="Reliability", xlim=(0, 1), ylim=(0, 1)
    )
    reliability.legend(loc="upper left", fontsize="small")
    risk.set(xlabel="coverage", ylabel="risk (% errors)", title="Risk-coverage", xlim=(0, 1))
    _save(figure, path)


def plot_shift(reports: Sequence[ShiftReport], path: str | os.PathLike[str]) -> None:
    """Write the figures of ``reports`` (one per model, all of the same shift) against the
    shift as a PNG, atomically: accuracy, ECE, NLL and mean confidence, a line per model.
    Named steps (corruptions) are spread evenly along the axis, their names slanted."""
    require_matplotlib()
    from matplotlib.figure import Figure

    if not reports or len({(report.kind, report.unit) for report in reports}) != 1:
        raise InvalidInputError("a shift plot takes one or more reports of the same shift")
    kind, unit = reports[0].kind, reports[0].unit
    labels = [step["step"] for step in reports[0].steps]
    named = any(isinstance(label, str) for label in labels)
    positions = list(range(len(labels))) if named else labels
    figure = Figure(figsize=(12, 9) if named else (11, 8), layout="constrained")
    for axes, (key, title, fraction) in zip(figure.subplots(2, 2).flat, SHIFT_PANELS, strict=True):
        for report in reports:
            values = [step[key] * (100 if fraction else 1) for step in report.steps]
            axes.plot(
                positions,
                values,
                marker="o",
                markersize=4 if named else 3,
                linestyle=":" if named else "-",  # named steps are not a continuum
                label=report.provenance["model"],
            )
        axes.set_title(title)
        if named:
            axes.set_xticks(positions, [format_step(label) for label in labels])
            axes.tick_params(axis="x", labelrotation=60)
        else:
            axes.set_xlabel(f"{kind} ({unit})")
        axes.set_ylabel("%" if fraction else "nats")
        axes.grid(alpha=0.3)
    figure.axes[0].legend(fontsize="small")
    figure.suptitle(f"MNIST test set under {kind}")
    _save(figure, path)


def _save(figure, path: str | os.PathLike[str]) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())


def _reliability_points(outcomes: Outcomes) -> tuple[torch.Tensor, torch.Tensor]:
    """The centres of the filled confidence bins, and the accuracy in each."""
    edges = torch.linspace(0, 1, RELIABILITY_BINS + 1, dtype=torch.float64)
    bins = torch.bucketize(outcomes.confidence, edges[1:-1], right=True)
    counts = torch.bincount(bins, minlength=RELIABILITY_BINS)
    hits = torch.bincount(bins, weights=outcomes.correct.double(), minlength=RELIABILITY_BINS)
    filled = counts > 0
    width = 1 / RELIABILITY_BINS
    return (edges[:-1] + width / 2)[filled], hits[filled] / counts[filled]


def _reliability(axes, outcomes: Outcomes) -> None:
    centres, accuracy = _reliability_points(outcomes)
    width = 1 / RELIABILITY_BINS
    axes.bar(centres.numpy(), accuracy.numpy(), width=width, edgecolor="black", label="accuracy")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    axes.set(xlabel="confidence", ylabel="accuracy", title="Reliability", xlim=(0, 1), ylim=(0, 1))
    axes.legend(loc="upper left")


def _risk_coverage(axes, outcomes: Outcomes) -> None:
    coverage, risk = risk_coverage_curve(outcomes.confidence, ~outcomes.correct)
    axes.plot(coverage.numpy(), 100 * risk.numpy())
    axes.set(xlabel="coverage", ylabel="risk (% errors)", title="Risk-coverage", xlim=(0, 1))


def _score_histograms(axes, report: EvaluationReport) -> None:
    outcomes, provenance = report.outcomes, report.provenance
    groups = [(provenance["dataset"]["name"], outcomes.in_distribution_scores)]
    if outcomes.ood_scores is not None:
        groups.append((provenance["ood_dataset"]["name"], outcomes.ood_scores))
    everything = torch.cat([scores for _, scores in groups])
    low, high = float(everything.min()), float(everything.max())
    edges = torch.linspace(low, max(high, low + 1e-6), 51, dtype=torch.float64)
    for name, scores in groups:
        axes.hist(scores.numpy(), bins=edges.numpy(), alpha=0.6, density=True, label=name)
    axes.set(
        xlabel=f"OOD score ({outcomes.ood_score_name})", ylabel="density", title="OOD separation"
    )
    axes.legend()
