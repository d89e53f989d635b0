"""Evaluation under dataset shift: MNIST test images rotated or translated step by step.

The protocol is that of Ovadia et al., "Can You Trust Your Model's Uncertainty? Evaluating
Predictive Uncertainty Under Dataset Shift", NeurIPS 2019 (their code's ``mnist`` experiments):

- rotation: 0, 15, ..., 180 degrees counter-clockwise about the image centre, 28x28 out, zeros
  where the rotated image does not reach. Pixels are resampled bilinearly (Ovadia et al. use
  scipy's cubic spline; ``scripts/crosscheck_shift.py`` measures what that changes) and
  rounded back to uint8, so that a shifted image is an image like any other;
- translation: 0, 2, ..., 26 pixels along the width, wrapping around (``np.roll`` in their
  code, `torch.roll` here); 28 pixels would be the image itself.

At each step the shifted test set is measured like any evaluation (accuracy, NLL, Brier, ECE,
mean confidence, mean entropy and mutual information), and the AUROC of the entropy score
says how well the model tells the shifted images from the unshifted ones. Every step draws
its samples from the same seed, so step 0 repeats `zoo.evaluate`'s in-distribution figures
exactly. The shifted sets are built once, on the evaluation device.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.classification import binary_auroc

from zoo.atomic import atomic_write_bytes
from zoo.data import ImageSet, load_dataset
from zoo.devices import describe_device, seeded, select_device
from zoo.errors import InvalidInputError
from zoo.evaluation import MetricRun, check_arguments, evaluating, full_float32_precision
from zoo.metrics.suite import SPECS
from zoo.models.base import ZooModel
from zoo.options import DEFAULT_BATCH_SIZE, DEFAULT_SAMPLES, SHIFT_KINDS
from zoo.report import format_metric

ROTATION_DEGREES = tuple(range(0, 181, 15))
TRANSLATION_PIXELS = tuple(range(0, 27, 2))
# What each step reports, in this order: keys of the evaluation's metrics, and two of its own.
STEP_METRICS = ("acc", "nll", "brier", "ece", "confidence", "entropy", "mi", "auroc")


def rotate(images: Tensor, degrees: float) -> Tensor:
    """(N, 28, 28) uint8 ``images`` turned ``degrees`` counter-clockwise about their centre:
    bilinear resampling, zeros outside, rounded to uint8. 0 degrees returns them as they are."""
    _check_images(images)
    if not isinstance(degrees, (int, float)) or not math.isfinite(degrees):
        raise InvalidInputError(f"a rotation takes a finite number of degrees, got {degrees!r}")
    if degrees % 360 == 0:
        return images
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    # output pixel -> input pixel, in grid_sample's [-1, 1] coordinates (y pointing down)
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], device=images.device)
    pixels = images.unsqueeze(1).float()
    grid = F.affine_grid(theta.expand(len(images), 2, 3), list(pixels.shape), align_corners=False)
    turned = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return turned[:, 0].round().clamp(0, 255).to(torch.uint8)


def translate(images: Tensor, pixels: int) -> Tensor:
    """(N, 28, 28) ``images`` moved ``pixels`` to the right, what leaves on the right coming
    back on the left, as ``np.roll`` along the width does."""
    _check_images(images)
    return torch.roll(images, shifts=int(pixels), dims=-1)


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 3:
        raise InvalidInputError("shifts take (N, 28, 28) uint8 images")


@dataclass(frozen=True)
class ShiftKind:
    """One kind of shift: its steps, what a step's value means, and the transform."""

    name: str
    steps: tuple[int, ...]
    unit: str
    transform: Callable[[Tensor, int], Tensor]


SHIFTS = {
    "rotation": ShiftKind("rotation", ROTATION_DEGREES, "degrees", rotate),
    "translation": ShiftKind("translation", TRANSLATION_PIXELS, "pixels", translate),
}
assert tuple(SHIFTS) == SHIFT_KINDS  # the command line offers these without importing torch


@dataclass
class ShiftReport:
    """A model's figures at every step of a shift, and how they were measured.

    Attributes:
        kind: "rotation" or "translation".
        unit: what a step's value is in.
        steps: one dict per step: "step" (its value) and each of `STEP_METRICS`.
        provenance: model, samples, seed, device, data, wall time.
    """

    kind: str
    unit: str
    steps: list[dict[str, float]]
    provenance: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """Mean accuracy, NLL and ECE over the shifted steps (the unshifted one excluded)."""
        shifted = [step for step in self.steps if step["step"] != 0]
        return {
            key: sum(step[key] for step in shifted) / len(shifted) for key in ("acc", "nll", "ece")
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "unit": self.unit,
            "steps": self.steps,
            "summary": self.summary(),
            "provenance": self.provenance,
        }

    def save_json(self, path: str | os.PathLike[str]) -> None:
        """Write `to_dict` to ``path`` as JSON, atomically."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        atomic_write_bytes(path, text.encode("utf-8"))

    def format(self) -> str:
        """A table with a row per step, then the summary, each line ending in a newline."""
        header = [
            self.unit,
            *(SPECS[key].label if key in SPECS else "Conf" for key in STEP_METRICS),
        ]
        rows = [header]
        for step in self.steps:
            cells = [
                format_metric(key, step[key]) if key in SPECS else f"{step[key]:.2%}"
                for key in STEP_METRICS
            ]
            rows.append([f"{step['step']:g}", *cells])
        widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
        lines = [
            "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
            for row in rows
        ]
        summary = self.summary()
        lines.append(
            f"mean over the shifted steps: Acc {summary['acc']:.2%}, NLL {summary['nll']:.4f}, "
            f"ECE {summary['ece']:.2%}"
        )
        return "\n".join(lines) + "\n"


def evaluate_shift(
    model: ZooModel,
    kind: str,
    *,
    samples: int = DEFAULT_SAMPLES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "auto",
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    source: str | None = None,
) -> ShiftReport:
    """Measure ``model`` on the MNIST test set at every step of the shift ``kind``.

    Raises:
        InvalidInputError: an unknown kind, or arguments `zoo.evaluate` would refuse.
    """
    if kind not in SHIFTS:
        raise InvalidInputError(f"shift must be one of {', '.join(SHIFTS)}; got {kind!r}")
    if not isinstance(model, ZooModel):
        raise InvalidInputError(f"model must be a zoo model, not {type(model).__name__}")
    samples = check_arguments("mnist", None, samples, batch_size, seed, "entropy")
    shift = SHIFTS[kind]
    target = select_device(device)
    test = load_dataset("mnist", "test", data_dir)
    started = time.perf_counter()
    images = test.images.to(target)
    shifted_sets = [(value, shift.transform(images, value)) for value in shift.steps]
    steps, samples_used = measure_steps(
        model,
        shifted_sets,
        test,
        samples=samples,
        batch_size=batch_size,
        seed=seed,
        device=target,
        progress=progress,
    )
    provenance = {
        "model": source or model.architecture,
        "architecture": model.architecture,
        "samples": samples_used,
        "seed": seed,
        "batch_size": batch_size,
        "dataset": {"name": test.name, "split": test.split, "size": len(test)},
        "file_md5s": test.file_md5s,
        "device": describe_device(target),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return ShiftReport(kind, shift.unit, steps, provenance)


def measure_steps(
    model: ZooModel,
    shifted_sets: list[tuple[float, Tensor]],
    test: ImageSet,
    *,
    samples: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    progress: bool = False,
) -> tuple[list[dict[str, float]], int]:
    """Each step's figures for (value, (N, 28, 28) uint8 images) ``shifted_sets``, the first
    being the unshifted images, whose labels are ``test``'s: every step is measured as an
    evaluation measures its test set, from the same seed, in eval mode on ``device``, and
    scored against the first. Returns the steps and the samples drawn per image."""
    steps, reference, samples_used = [], None, samples
    with evaluating(model, device), full_float32_precision():
        for value, shifted in shifted_sets:
            data = ImageSet(test.name, test.split, shifted, test.targets, test.folder, {})
            with seeded(seed, device):
                run = MetricRun(model, samples, batch_size, "entropy", progress)
                run.in_distribution(data)
            samples_used = run.samples_used
            outcomes = run.outcomes()
            scores = outcomes.in_distribution_scores
            reference = scores if reference is None else reference
            figures = {
                key: value for group in run.results().values() for key, value in group.items()
            }
            figures["confidence"] = float(outcomes.confidence.double().mean())
            figures["auroc"] = _auroc(reference, scores)
            steps.append({"step": value} | {key: figures[key] for key in STEP_METRICS})
    return steps, samples_used


def _auroc(unshifted: Tensor, shifted: Tensor) -> float:
    """How well the entropy ranks the shifted images above the unshifted ones: 0.5 when the
    two sets are alike."""
    scores = torch.cat([unshifted, shifted]).double()
    labels = torch.cat([torch.zeros(len(unshifted)), torch.ones(len(shifted))]).long()
    return float(binary_auroc(scores, labels))
