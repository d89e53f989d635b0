"""`EvaluationReport`: what `zoo.evaluate` returns, as tables, as JSON and as the data for plots."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from zoo.atomic import atomic_write_bytes
from zoo.errors import CheckpointError
from zoo.files import read_file
from zoo.limits import MAX_REPORT_BYTES, MAX_SAMPLES
from zoo.metrics.suite import GROUP_TITLES, SPECS
from zoo.options import DATASET_NAMES, OOD_SCORES, SEED_RANGE
from zoo.pretrained import EVAL_NAME
from zoo.text import escaped, is_version, shown


@dataclass(frozen=True)
class Outcomes:
    """Per-image results of an evaluation, kept for plots (N test images, M OOD images).

    Attributes:
        confidence: (N,) max of the predictive distribution.
        correct: (N,) whether the predicted class is the label.
        ood_score_name: the OOD score: "entropy", "msp" or "mi".
        in_distribution_scores: (N,) the OOD score of each test image.
        ood_scores: (M,) the OOD score of each OOD image, or None without an OOD set.
    """

    confidence: Tensor
    correct: Tensor
    ood_score_name: str
    in_distribution_scores: Tensor
    ood_scores: Tensor | None


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics and provenance of one evaluation.

    Attributes:
        metrics: values by group ("classification", "calibration", "selective", "ood") and
            key ("acc", "nll", ...), as fractions, never percentages. Cov@5Risk is NaN when no
            coverage reaches 5% risk.
        provenance: what was evaluated, on which data, with which settings and software.
        outcomes: per-image results, for plots; not part of the JSON.
    """

    metrics: dict[str, dict[str, float]]
    provenance: dict[str, Any]
    outcomes: Outcomes | None = field(default=None, repr=False, compare=False)

    def __getitem__(self, key: str) -> float:
        """A metric by key, e.g. ``report["ece"]``."""
        metrics = flat_metrics(self.metrics)
        if key not in metrics:
            raise KeyError(f"no metric {key!r}; this report has {', '.join(metrics)}")
        return metrics[key]

    def to_dict(self) -> dict[str, Any]:
        """Metrics and provenance as JSON-ready values; NaN and infinity become None (null)."""
        metrics = {
            group: {key: value if math.isfinite(value) else None for key, value in values.items()}
            for group, values in self.metrics.items()
        }
        return {"metrics": metrics, "provenance": self.provenance}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def save_json(self, path: str | os.PathLike[str]) -> None:
        """Write `to_json` to ``path`` atomically."""
        atomic_write_bytes(path, self.to_json().encode("utf-8"))

    @classmethod
    def read_json(
        cls,
        path: str | os.PathLike[str],
        weights_sha256: str | None = None,
        temperature: float | None = None,
    ) -> EvaluationReport:
        """Read a report written by `save_json`; null metrics come back as NaN.

        Raises:
            CheckpointError: the file cannot be read, is not such a report, or, where
                ``weights_sha256`` (and ``temperature``) are given, evaluates other weights
                (or the same weights at another temperature).
        """
        try:
            raw = json.loads(read_file(path, MAX_REPORT_BYTES).decode("utf-8"), parse_constant=str)
        except (OSError, ValueError, RecursionError) as error:
            raise CheckpointError(path, f"is not a zoo eval report ({error})") from None
        problem = _report_problem(raw)
        if problem:
            raise CheckpointError(path, f"is not a zoo eval report: {problem}")
        metrics = {
            group: {
                key: math.nan if value is None else float(value) for key, value in values.items()
            }
            for group, values in raw["metrics"].items()
        }
        provenance = dict(raw["provenance"])
        evaluated = provenance.get("weights_sha256")
        if weights_sha256 is not None and evaluated != weights_sha256:
            raise CheckpointError(
                path,
                f"evaluates weights with sha256 {evaluated}, not {weights_sha256}: evaluate "
                f"them again with zoo eval --json, or delete it",
            )
        evaluated_at = report_temperature(provenance)
        if temperature is not None and evaluated_at != temperature:
            raise CheckpointError(
                path,
                f"evaluates these weights at temperature {evaluated_at:g}, not {temperature:g}: "
                "evaluate the model again with zoo eval --json, or delete it",
            )
        return cls(metrics, provenance)

    def format(self) -> str:
        """The report as text: a heading, then one table per metric group."""
        blocks = [self._heading()]
        for group, values in self.metrics.items():
            rows = [(SPECS[key].label, format_metric(key, value)) for key, value in values.items()]
            blocks.append(_table(GROUP_TITLES[group], rows))
        return "\n\n".join(blocks) + "\n"

    def __str__(self) -> str:
        return self.format()

    def _heading(self) -> str:
        p = self.provenance
        data = p["dataset"]
        lines = [
            f"{escaped(p['model'])} ({p['architecture']}, weights sha256 "
            f"{p['weights_sha256'][:12]})",
            f"{data['name']} {data['split']}: {data['size']:,} images, {p['samples']} "
            f"sample{'s' if p['samples'] != 1 else ''}, seed {p['seed']}, {p['device']}, "
            f"{p['wall_time_s']:.1f} s",
        ]
        if p["ood_dataset"]:
            ood = p["ood_dataset"]
            lines.append(
                f"OOD: {ood['name']} {ood['split']} ({ood['size']:,} images), "
                f"scored by {p['ood_score']}"
            )
        return "\n".join(lines)


def _report_problem(raw: object) -> str | None:
    """What keeps ``raw`` from being a report `to_dict` writes, if anything: every metric one
    the zoo measures, with a finite value or null (n/a), and the provenance that cards and
    tables read, of the kinds evaluation writes."""
    if not isinstance(raw, dict) or not isinstance(raw.get("metrics"), dict):
        return "no 'metrics' table"
    for group, values in raw["metrics"].items():
        if not isinstance(values, dict):
            return f"metrics group {shown(group)} is not a table"
        for key, value in values.items():
            if key not in SPECS or SPECS[key].group != group:
                return f"unknown metric {shown(f'{group}.{key}')}"
            if value is not None and not _is_finite_number(value):
                return f"metric {key} is {shown(value)}, not a finite number or null"
    provenance = raw.get("provenance")
    if not isinstance(provenance, dict):
        return "no 'provenance' table"
    checks = {
        "dataset": _is_dataset(provenance.get("dataset")),
        "ood_dataset": provenance.get("ood_dataset") is None
        or _is_dataset(provenance["ood_dataset"]),
        "ood_score": provenance.get("ood_score") in (None, *OOD_SCORES),
        "samples": _is_integer(provenance.get("samples"), 1, MAX_SAMPLES),
        "seed": _is_integer(provenance.get("seed"), *SEED_RANGE),
        "ood_threshold": provenance.get("ood_threshold") is None
        or _is_finite_number(provenance["ood_threshold"]),
        "versions": isinstance(provenance.get("versions"), dict)
        and all(is_version(provenance["versions"].get(name)) for name in ("zoo", "torch")),
    }
    if "ood" in raw["metrics"]:
        checks["ood_dataset"] &= provenance.get("ood_dataset") is not None
        checks["ood_score"] &= provenance.get("ood_score") is not None
    wrong = [key for key, fine in checks.items() if not fine]
    return f"provenance field {wrong[0]!r} is missing or wrong" if wrong else None


def _is_finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_dataset(value: object) -> bool:
    return (
        isinstance(value, dict)
        and value.get("name") in DATASET_NAMES
        and _is_integer(value.get("size"), 0, 10**9)
    )


def flat_metrics(grouped: dict[str, dict[str, float]]) -> dict[str, float]:
    """Grouped metrics, as reports and the registry hold them, in one dict by key."""
    return {key: value for values in grouped.values() for key, value in values.items()}


def format_metric(key: str, value: float) -> str:
    """A metric as printed: a percentage or four decimals, as its `MetricSpec` says."""
    if not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.2f}%" if SPECS[key].percent else f"{value:.4f}"


def aligned(rows: list[list[str]], *, label_column: bool = False) -> list[str]:
    """``rows`` of cells as lines, each column right-aligned to its widest cell; with
    ``label_column`` the first is left-aligned, as a column of names."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if label_column and column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    """A two-column table under a titled rule, values right-aligned."""
    label_width = max(len(label) for label, _ in rows)
    value_width = max(len(value) for _, value in rows)
    width = max(len(title), label_width + 2 + value_width)
    lines = [title, "─" * width]
    lines += [f"{label:<{width - value_width}}{value:>{value_width}}" for label, value in rows]
    return "\n".join(lines)


def read_folder_report(
    folder: Path, weights_sha256: str, temperature: float = 1.0
) -> EvaluationReport | None:
    """The report in ``folder``'s eval.json, checked to be of the weights with
    ``weights_sha256`` at ``temperature``; None when the folder has none."""
    path = folder / EVAL_NAME
    return EvaluationReport.read_json(path, weights_sha256, temperature) if path.exists() else None


def report_temperature(provenance: dict[str, Any]) -> float:
    """The temperature a report's model had: 1 for reports from before temperatures."""
    value = provenance.get("temperature", 1.0)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else -1.0
