"""`compare`: several models measured on the same data, side by side.

Without a shift every model gets `zoo.evaluate`'s in-distribution and OOD metrics, on test
sets read once; with one, every model is measured at each step of the shift on shifted sets
built once (`zoo.shift.evaluate_shifts`). Each model draws its samples from the same seed,
so a model's column is the figure `zoo eval` gives it alone.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from zoo.atomic import atomic_write_bytes
from zoo.data import load_dataset
from zoo.devices import select_device
from zoo.errors import InvalidInputError
from zoo.evaluation import check_arguments, check_model, measure
from zoo.limits import MAX_COMPARED_MODELS
from zoo.metrics.suite import SPECS
from zoo.models.base import ZooModel
from zoo.options import DEFAULT_BATCH_SIZE, DEFAULT_SAMPLES
from zoo.report import EvaluationReport, aligned, format_metric
from zoo.shift import (
    STEP_LABELS,
    STEP_METRICS,
    ShiftReport,
    check_shift,
    evaluate_shifts,
    format_step,
    format_step_figure,
)

_STEP_TITLES = {
    "acc": "accuracy",
    "nll": "NLL",
    "brier": "Brier score",
    "ece": "ECE",
    "confidence": "mean confidence",
    "entropy": "mean predictive entropy",
    "mi": "mean mutual information",
    "auroc": "AUROC of entropy, shifted against unshifted",
}


@dataclass(frozen=True)
class Comparison:
    """Reports of several models on the same data, in the order they were given.

    Attributes:
        reports: an `EvaluationReport` per model, or with a shift a `ShiftReport` per model.
        shift: the shift's kind, or None.
    """

    reports: list[EvaluationReport] | list[ShiftReport]
    shift: str | None = None

    def __post_init__(self) -> None:
        if not self.reports:
            raise InvalidInputError("a comparison needs at least one report")

    @property
    def names(self) -> list[str]:
        return [report.provenance["model"] for report in self.reports]

    def format(self) -> str:
        """A heading, then a table with a column per model: the metrics, or with a shift the
        mean figures over the shifted steps and a table per figure with a row per step."""
        first = self.reports[0].provenance
        data = first["dataset"]
        heading = f"{data['name']} {data['split']}: {data['size']:,} images"
        if self.shift is not None:
            heading += f", under {self.shift} ({first['shift']})"
        elif first["ood_dataset"]:
            ood = first["ood_dataset"]
            heading += f"; OOD: {ood['name']} {ood['split']}, scored by {first['ood_score']}"
        heading += f"\nseed {first['seed']}, {first['device']}"
        if self.shift is None:
            return heading + "\n\n" + self._metric_table() + "\n"
        return heading + "\n\n" + "\n\n".join(self._shift_tables()) + "\n"

    def __str__(self) -> str:
        return self.format()

    def to_dict(self) -> dict[str, Any]:
        return {
            "shift": self.shift,
            "models": self.names,
            "reports": [report.to_dict() for report in self.reports],
        }

    def save_json(self, path: str | os.PathLike[str]) -> None:
        """Write `to_dict` to ``path`` as JSON, atomically; NaN metrics are null."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        atomic_write_bytes(path, text.encode("utf-8"))

    def _metric_table(self) -> str:
        reports: list[EvaluationReport] = self.reports  # type: ignore[assignment]
        rows = [["", *self.names], ["Samples", *self._samples()]]
        for group in reports[0].metrics:
            for key in reports[0].metrics[group]:
                cells = [format_metric(key, report.metrics[group][key]) for report in reports]
                rows.append([SPECS[key].label, *cells])
        return "\n".join(aligned(rows, label_column=True))

    def _samples(self) -> list[str]:
        return [str(report.provenance["samples"]) for report in self.reports]

    def _shift_tables(self) -> list[str]:
        reports: list[ShiftReport] = self.reports  # type: ignore[assignment]
        kind, unit = reports[0].kind, reports[0].unit
        summaries = [report.summary() for report in reports]
        rows = [["mean over the shifted steps", *self.names], ["Samples", *self._samples()]]
        for key in ("acc", "nll", "ece"):
            rows.append([STEP_LABELS[key], *(format_step_figure(key, s[key]) for s in summaries)])
        tables = ["\n".join(aligned(rows, label_column=True))]
        for key in STEP_METRICS:
            rows = [[unit, *self.names]]
            for index, step in enumerate(reports[0].steps):
                cells = [format_step_figure(key, report.steps[index][key]) for report in reports]
                rows.append([format_step(step["step"]), *cells])
            named = isinstance(reports[0].steps[0]["step"], str)
            table = "\n".join(aligned(rows, label_column=named))
            tables.append(f"{_STEP_TITLES[key]} by {kind}\n{table}")
        return tables


def compare(
    models: Sequence[tuple[str, ZooModel]],
    *,
    shift: str | None = None,
    dataset: str = "mnist",
    ood: str | None = "fashion_mnist",
    samples: int = DEFAULT_SAMPLES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "auto",
    seed: int = 0,
    ood_score: str = "entropy",
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Comparison:
    """Measure each of the (name, model) ``models`` on the same data, as `zoo.evaluate` would
    one by one (``shift``, ``ood`` and the rest mean what they mean there).

    Raises:
        InvalidInputError: fewer than two models or more than `MAX_COMPARED_MODELS`, a name
            given twice, or arguments `zoo.evaluate` would refuse.
    """
    check_models(models)
    if shift is not None:
        check_shift(shift, dataset)
        reports = evaluate_shifts(
            models,
            shift,
            samples=samples,
            batch_size=batch_size,
            device=device,
            seed=seed,
            data_dir=data_dir,
            progress=progress,
        )
        return Comparison(reports, shift)
    samples = check_arguments(dataset, ood, samples, batch_size, seed, ood_score)
    for _, model in models:
        check_model(model, samples, batch_size)
    target = select_device(device)
    in_distribution = load_dataset(dataset, "test", data_dir)
    out_of_distribution = load_dataset(ood, "test", data_dir) if ood else None
    evaluations = [
        measure(
            model,
            in_distribution,
            out_of_distribution,
            samples=samples,
            batch_size=batch_size,
            device=target,
            seed=seed,
            ood_score=ood_score,
            progress=progress,
            source=name,
        )
        for name, model in models
    ]
    return Comparison(evaluations)


def labels_of(models: Sequence[Any]) -> list[str]:
    """A column label per model: a name or folder as given, a model object by its
    architecture, numbered when several objects share one.

    Raises:
        InvalidInputError: fewer than two models or more than `MAX_COMPARED_MODELS`, or one
            that is neither a model nor a name.
    """
    _check_count(len(models))
    named = []
    for model in models:
        if isinstance(model, ZooModel):
            named.append(model.architecture)
        elif isinstance(model, (str, os.PathLike)):
            named.append(str(model))
        else:
            raise InvalidInputError(
                f"each model must be a zoo model, a model folder or a registered name, not "
                f"{type(model).__name__}"
            )
    counts = collections.Counter(named)
    return [
        f"{label} #{index + 1}" if isinstance(model, ZooModel) and counts[label] > 1 else label
        for index, (label, model) in enumerate(zip(named, models, strict=True))
    ]


def check_models(models: Sequence[tuple[str, Any]]) -> None:
    """Refuse fewer than two (label, model) pairs, more than `MAX_COMPARED_MODELS`, or a
    label given twice, before anything is loaded or measured."""
    _check_count(len(models))
    counts = collections.Counter(label for label, _ in models)
    repeated = sorted(label for label, count in counts.items() if count > 1)
    if repeated:
        raise InvalidInputError(f"each model may be compared once; given twice: {repeated[0]}")


def _check_count(count: int) -> None:
    if not 2 <= count <= MAX_COMPARED_MODELS:
        raise InvalidInputError(
            f"compare takes 2 to {MAX_COMPARED_MODELS} models, got {count}; zoo eval measures one"
        )
