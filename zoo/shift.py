"""Evaluation under dataset shift: MNIST test images rotated or translated step by step.

The protocol is that of Ovadia et al., "Can You Trust Your Model's Uncertainty? Evaluating
Predictive Uncertainty Under Dataset Shift", NeurIPS 2019 (their code's ``mnist`` experiments):

- rotation: 0, 15, ..., 180 degrees counter-clockwise about the image centre, 28x28 out, zeros
  where the rotated image does not reach. Pixels are resampled bilinearly (Ovadia et al. use
  scipy's cubic spline; ``scripts/crosscheck_shift.py`` measures what that changes) and
  rounded back to uint8, so that a shifted image is an image like any other;
- translation: 0, 2, ..., 26 pixels along the width, wrapping around (``np.roll`` in their
  code, `torch.roll` here); 28 pixels would be the image itself;
- corruption: the unshifted images ("identity"), then each of the fifteen corruptions of
  MNIST-C (Mu and Gilmer, 2019), made by `zoo.corruptions` at the severity MNIST-C's code
  takes by default, with random choices drawn from the evaluation's seed.

At each step the shifted test set is measured like any evaluation (accuracy, NLL, Brier, ECE,
mean confidence, mean entropy and mutual information), and the AUROC of the entropy score
says how well the model tells the shifted images from the unshifted ones. Every step draws
its samples from the same seed, so step 0 repeats `zoo.evaluate`'s in-distribution figures
exactly. The shifted sets are built once, on the evaluation device, and serve every model
measured on them (`evaluate_shifts`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.classification import binary_auroc

from zoo.atomic import atomic_write_bytes, sha256_hex
from zoo.corruptions import CORRUPTIONS, SEVERITIES, check_images, corrupt
from zoo.data import ImageSet, load_dataset
from zoo.devices import describe_device, seeded, select_device
from zoo.errors import InvalidInputError
from zoo.evaluation import (
    MetricRun,
    check_arguments,
    check_model,
    evaluating,
    full_float32_precision,
)
from zoo.metrics.suite import SPECS
from zoo.models.base import ZooModel
from zoo.options import DEFAULT_BATCH_SIZE, DEFAULT_SAMPLES, SHIFT_KINDS
from zoo.pretrained import weights_bytes
from zoo.report import aligned, format_metric

ROTATION_DEGREES = tuple(range(0, 181, 15))
TRANSLATION_PIXELS = tuple(range(0, 27, 2))
CORRUPTION_STEPS = ("identity", *CORRUPTIONS)
# What each step reports, in this order: keys of the evaluation's metrics, and two of its own.
STEP_METRICS = ("acc", "nll", "brier", "ece", "confidence", "entropy", "mi", "auroc")
STEP_LABELS = {key: SPECS[key].label if key in SPECS else "Conf" for key in STEP_METRICS}


def rotate(images: Tensor, degrees: float) -> Tensor:
    """(N, 28, 28) uint8 ``images`` turned ``degrees`` counter-clockwise about their centre:
    bilinear resampling, zeros outside, rounded to uint8. 0 degrees returns them as they are."""
    check_images(images)
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
    check_images(images)
    return torch.roll(images, shifts=int(pixels), dims=-1)


def corrupt_step(images: Tensor, name: str, seed: int) -> Tensor:
    """``images`` corrupted by the MNIST-C corruption ``name`` (`zoo.corruptions.corrupt`), or
    as they are for "identity"."""
    return images if name == "identity" else corrupt(images, name, seed)


@dataclass(frozen=True)
class ShiftKind:
    """One kind of shift: its steps, the first being no shift, what a step's value is, and the
    transform, which takes the images, a step and the evaluation's seed."""

    name: str
    steps: tuple[int | str, ...]
    unit: str
    transform: Callable[[Tensor, Any, int], Tensor]
    protocol: str


SHIFTS = {
    "rotation": ShiftKind(
        "rotation",
        ROTATION_DEGREES,
        "degrees",
        lambda images, degrees, seed: rotate(images, degrees),
        "Ovadia et al. (2019): counter-clockwise about the centre, bilinear, zeros outside",
    ),
    "translation": ShiftKind(
        "translation",
        TRANSLATION_PIXELS,
        "pixels",
        lambda images, pixels, seed: translate(images, pixels),
        "Ovadia et al. (2019): to the right, wrapping around",
    ),
    "corruption": ShiftKind(
        "corruption",
        CORRUPTION_STEPS,
        "corruption",
        corrupt_step,
        "MNIST-C (Mu and Gilmer, 2019) at its code's default severities, made by "
        "zoo.corruptions from the seed",
    ),
}
assert tuple(SHIFTS) == SHIFT_KINDS  # the command line offers these without importing torch


@dataclass
class ShiftReport:
    """A model's figures at every step of a shift, and how they were measured.

    Attributes:
        kind: "rotation", "translation" or "corruption".
        unit: what a step's value is in ("corruption": its name).
        steps: one dict per step: "step" (its value or name) and each of `STEP_METRICS`; the
            first is the unshifted test set.
        provenance: model, samples, seed, device, data, wall time.
    """

    kind: str
    unit: str
    steps: list[dict[str, Any]]
    provenance: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """Mean accuracy, NLL and ECE over the shifted steps (the unshifted first excluded)."""
        shifted = self.steps[1:]
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
        header = [self.unit, *(STEP_LABELS[key] for key in STEP_METRICS)]
        rows = [header]
        for step in self.steps:
            cells = [format_step_figure(key, step[key]) for key in STEP_METRICS]
            rows.append([format_step(step["step"]), *cells])
        lines = aligned(rows)
        summary = self.summary()
        lines.append(
            f"mean over the shifted steps: Acc {summary['acc']:.2%}, NLL {summary['nll']:.4f}, "
            f"ECE {summary['ece']:.2%}"
        )
        return "\n".join(lines) + "\n"


def check_shift(kind: object, dataset: str = "mnist") -> str:
    """Return ``kind`` if it names a shift of the MNIST test set, else raise
    `InvalidInputError`."""
    if not isinstance(kind, str) or kind not in SHIFTS:
        raise InvalidInputError(f"shift must be one of {', '.join(SHIFTS)}; got {kind!r}")
    if dataset != "mnist":
        raise InvalidInputError(f"shifts are of the MNIST test set, not of {dataset!r}")
    return kind


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
    (report,) = evaluate_shifts(
        [(source or getattr(model, "architecture", ""), model)],
        kind,
        samples=samples,
        batch_size=batch_size,
        device=device,
        seed=seed,
        data_dir=data_dir,
        progress=progress,
    )
    return report


def evaluate_shifts(
    models: Sequence[tuple[str, ZooModel]],
    kind: str,
    *,
    samples: int = DEFAULT_SAMPLES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "auto",
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> list[ShiftReport]:
    """Measure each of the (name, model) ``models`` at every step of the shift ``kind``, on
    shifted sets built once for all of them on the device; a report per model, in order.

    Raises:
        InvalidInputError: an unknown kind, or arguments `zoo.evaluate` would refuse.
    """
    check_shift(kind)
    samples = check_arguments("mnist", None, samples, batch_size, seed, "entropy")
    if not models:
        raise InvalidInputError("no models to measure")
    for _, model in models:
        check_model(model, samples, batch_size)
    shift = SHIFTS[kind]
    target = select_device(device)
    test = load_dataset("mnist", "test", data_dir)
    started = time.perf_counter()
    images = test.images.to(target)
    shifted_sets = [(value, shift.transform(images, value, seed)) for value in shift.steps]
    build_time = time.perf_counter() - started
    reports = []
    for name, model in models:
        started = time.perf_counter()
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
            "model": name,
            "architecture": model.architecture,
            "weights_sha256": sha256_hex(weights_bytes(model)),
            "temperature": model.temperature,
            "samples": samples_used,
            "seed": seed,
            "batch_size": batch_size,
            "dataset": {"name": test.name, "split": test.split, "size": len(test)},
            "file_md5s": test.file_md5s,
            "shift": shift.protocol,
            "device": describe_device(target),
            "build_time_s": round(build_time, 3),
            "wall_time_s": round(time.perf_counter() - started, 3),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if kind == "corruption":
            provenance["severities"] = dict(SEVERITIES)
        reports.append(ShiftReport(kind, shift.unit, steps, provenance))
    return reports


def format_step_figure(key: str, value: float) -> str:
    """A figure of a step as tables show it: as the evaluation's, or mean confidence in %."""
    return format_metric(key, value) if key in SPECS else f"{value:.2%}"


def format_step(value: int | str) -> str:
    """A step as a table shows it: a number as it is, a corruption's name with spaces."""
    return value.replace("_", " ") if isinstance(value, str) else f"{value:g}"


def measure_steps(
    model: ZooModel,
    shifted_sets: Sequence[tuple[int | str, Tensor]],
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
