"""`evaluate`: a model's accuracy, calibration, selective-classification and OOD metrics.

One pass over the in-distribution test set feeds every metric, one pass over the OOD test set
feeds the OOD metrics, and each batch's S samples are dropped as soon as the metrics have seen
them. The metrics are defined in `zoo.metrics`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import platform
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import torch
import torchmetrics
import torchvision
from torch import Tensor
from tqdm.auto import tqdm

from zoo import metrics
from zoo._version import __version__
from zoo.atomic import sha256_hex
from zoo.data import ImageSet, check_dataset_name, load_dataset
from zoo.devices import check_seed, describe_device, seeded, select_device, to_host
from zoo.errors import InvalidInputError
from zoo.limits import MAX_EVALUATION_ROWS
from zoo.metrics.suite import SUITE, build_collection
from zoo.models.base import ZooModel, check_positive_integer, check_samples
from zoo.options import DEFAULT_BATCH_SIZE, DEFAULT_SAMPLES, OOD_SCORES
from zoo.pretrained import weights_bytes
from zoo.report import EvaluationReport, Outcomes

_CLASSIFIER_GROUPS = ("classification", "calibration", "selective")


def evaluate(
    model: ZooModel,
    dataset: str = "mnist",
    ood: str | None = "fashion_mnist",
    samples: int = DEFAULT_SAMPLES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "auto",
    seed: int = 0,
    *,
    ood_score: str = "entropy",
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    source: str | None = None,
) -> EvaluationReport:
    """Measure ``model`` on the test split of ``dataset``, and on ``ood`` as unseen data.

    `zoo.evaluate`, the public face of this function, also takes a registered name, a model
    folder or a Hub id for ``model``, and loads it once the other arguments are checked.

    The same arguments give the same numbers: the sampling is seeded with ``seed``, and on the
    CPU the result is reproducible bit for bit. On a GPU, float32 runs at full precision:
    TensorFloat-32 is off for the evaluation (and restored after), so that its figures match
    the CPU's to float rounding, and the report's provenance records it. The caller's random
    state is left untouched, and so are the model's device and train/eval mode.

    Args:
        model: the model to measure.
        dataset: the in-distribution dataset, "mnist".
        ood: the out-of-distribution dataset, "fashion_mnist", or None to skip OOD metrics.
        samples: S, stochastic samples per image, at most `zoo.limits.MAX_SAMPLES`
            (deterministic models use 1); ``batch_size`` x S is bounded too.
        batch_size: images per forward pass.
        device: "auto", "cpu", "cuda" or "mps".
        seed: seeds the samples drawn.
        ood_score: how an image is scored as OOD: "entropy", "msp" or "mi".
        data_dir: the data root; see `zoo.data`.
        progress: show a progress bar on stderr.
        source: how the model was named, for the report's provenance; by default its
            architecture.

    Returns:
        The metrics, grouped as classification, calibration, selective and ood, with the
        provenance of the run.
    """
    samples = check_samples(samples)
    check_model(model, samples, batch_size)
    check_arguments(dataset, ood, samples, batch_size, seed, ood_score)
    target = select_device(device)
    in_distribution = load_dataset(dataset, "test", data_dir)
    out_of_distribution = load_dataset(ood, "test", data_dir) if ood else None
    return measure(
        model,
        in_distribution,
        out_of_distribution,
        samples=samples,
        batch_size=batch_size,
        device=target,
        seed=seed,
        ood_score=ood_score,
        progress=progress,
        source=source,
    )


def measure(
    model: ZooModel,
    in_distribution: ImageSet,
    out_of_distribution: ImageSet | None,
    *,
    samples: int,
    batch_size: int,
    device: torch.device,
    seed: int,
    ood_score: str,
    progress: bool,
    source: str | None,
) -> EvaluationReport:
    """`evaluate` on data already loaded and arguments already checked, so that several
    models can be measured on the same data (`zoo.comparison`)."""
    started = time.perf_counter()
    with evaluating(model, device), seeded(seed, device), full_float32_precision() as precision:
        run = MetricRun(model, samples, batch_size, ood_score, progress)
        run.in_distribution(in_distribution)
        if out_of_distribution is not None:
            run.out_of_distribution(out_of_distribution)
    wall_time = time.perf_counter() - started
    outcomes = run.outcomes()

    provenance = {
        "model": source or model.architecture,
        "architecture": model.architecture,
        "weights_sha256": sha256_hex(weights_bytes(model)),
        "temperature": model.temperature,
        "samples": run.samples_used,
        "seed": seed,
        "batch_size": batch_size,
        "dataset": _describe_data(in_distribution),
        "ood_dataset": _describe_data(out_of_distribution) if out_of_distribution else None,
        "ood_score": ood_score if out_of_distribution else None,
        "ood_threshold": ood_threshold(outcomes.ood_scores),
        "device": describe_device(device),
        "float32_precision": precision,
        "versions": _versions(),
        "wall_time_s": round(wall_time, 3),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return EvaluationReport(run.results(), provenance, outcomes)


def ood_threshold(ood_scores: Tensor | None) -> float | None:
    """The OOD score at and above which 95% of the OOD images lie: the threshold FPR95 is
    measured at, for flagging unfamiliar inputs. None without OOD images."""
    if ood_scores is None or len(ood_scores) == 0:
        return None
    ordered = ood_scores.double().sort().values
    return float(ordered[int(0.05 * len(ordered))])


def check_model(model: ZooModel, samples: int, batch_size: int) -> None:
    """Refuse what is not a zoo model with values, and a batch whose rows would exceed
    `MAX_EVALUATION_ROWS` for this model (an ensemble gives M rows whatever samples says)."""
    if not isinstance(model, ZooModel):
        raise InvalidInputError(
            f"model must be a zoo model, not {type(model).__name__}; zoo.evaluate also takes "
            "a model folder or a registered name"
        )
    if any(tensor.is_meta for tensor in itertools.chain(model.parameters(), model.buffers())):
        raise InvalidInputError(
            "the model is on the meta device, which holds shapes but no values: nothing to evaluate"
        )
    rows_per_batch = check_positive_integer("batch_size", batch_size) * model.samples_per_image(
        samples
    )
    if rows_per_batch > MAX_EVALUATION_ROWS:
        raise InvalidInputError(
            f"batch_size x the model's {model.samples_per_image(samples):,} rows per image is "
            f"{rows_per_batch:,}, more than the {MAX_EVALUATION_ROWS:,} that bound its memory; "
            "lower the batch size"
        )


class MetricRun:
    """The metric state of one evaluation, fed batch by batch."""

    def __init__(
        self, model: ZooModel, samples: int, batch_size: int, score: str, progress: bool
    ) -> None:
        self.model, self.samples, self.batch_size = model, samples, batch_size
        self.score, self.progress = score, progress
        self.samples_used = samples
        classes = model.num_classes
        self.classifier_metrics = build_collection(_CLASSIFIER_GROUPS, classes, score)
        self.ood_metrics = build_collection(("ood",), classes, score)
        self.scores: dict[bool, list[Tensor]] = {False: [], True: []}
        self.saw_ood = False

    def in_distribution(self, data: ImageSet) -> None:
        for sample_probs, log_probs, targets in self._predict(data):
            self.classifier_metrics.update(sample_probs, targets, log_probs=log_probs)
            self._score(sample_probs, is_ood=False)

    def out_of_distribution(self, data: ImageSet) -> None:
        self.saw_ood = True
        for sample_probs, _, _ in self._predict(data):
            self._score(sample_probs, is_ood=True)

    def _score(self, sample_probs: Tensor, is_ood: bool) -> None:
        labels = torch.full((len(sample_probs),), int(is_ood), dtype=torch.long)
        self.ood_metrics.update(sample_probs, labels)
        self.scores[is_ood].append(metrics.ood_score(sample_probs, self.score))

    def _predict(self, data: ImageSet) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Yield (sample_probs, log_probs, targets) per batch, in float64 on the CPU."""
        device = next(self.model.parameters()).device
        images = data.images.to(device)
        batches = range(0, len(data), self.batch_size)
        label = f"{data.name} {data.split}"
        for start in tqdm(batches, desc=label, unit="batch", disable=not self.progress):
            stop = start + self.batch_size
            prediction = self.model.predict(images[start:stop], self.samples)  # finite
            self.samples_used = prediction.sample_probs.shape[1]
            yield (
                to_host(prediction.sample_probs, torch.float64),
                to_host(prediction.log_probs, torch.float64),
                data.targets[start:stop],
            )

    def results(self) -> dict[str, dict[str, float]]:
        computed = dict(self.classifier_metrics.compute())
        if self.saw_ood:
            computed |= self.ood_metrics.compute()
        grouped: dict[str, dict[str, float]] = {}
        for spec in SUITE:  # in the suite's order; the collections sort their keys
            if spec.key in computed:
                grouped.setdefault(spec.group, {})[spec.key] = float(computed[spec.key])
        return grouped

    def outcomes(self) -> Outcomes:
        confidence, correct = self.classifier_metrics["aurc"].outcomes()
        return Outcomes(
            confidence=confidence,
            correct=correct.bool(),
            ood_score_name=self.score,
            in_distribution_scores=torch.cat(self.scores[False]),
            ood_scores=torch.cat(self.scores[True]) if self.saw_ood else None,
        )


def check_arguments(
    dataset: str,
    ood: str | None,
    samples: int,
    batch_size: int,
    seed: int,
    ood_score: str,
) -> int:
    """Check every argument but the model, before any data is loaded or any model is run;
    return ``samples`` as an int."""
    samples = check_samples(samples)
    check_dataset_name(dataset)
    if ood is not None:
        check_dataset_name(ood)
    rows_per_batch = check_positive_integer("batch_size", batch_size) * samples
    if rows_per_batch > MAX_EVALUATION_ROWS:
        raise InvalidInputError(
            f"batch_size x samples is {batch_size:,} x {samples:,} image-samples per batch, "
            f"more than the {MAX_EVALUATION_ROWS:,} that bound its memory; lower the batch size"
        )
    check_seed(seed)
    if ood_score not in OOD_SCORES:
        choices = ", ".join(OOD_SCORES)
        raise InvalidInputError(f"ood_score must be one of {choices}; got {ood_score!r}")
    return samples


@contextlib.contextmanager
def evaluating(model: ZooModel, device: torch.device) -> Iterator[None]:
    """Put ``model`` in eval mode on ``device``, and every module back as it was afterwards,
    also when moving it fails halfway."""
    modes = {module: module.training for module in model.modules()}
    original_device = next(model.parameters()).device
    try:
        model.eval().to(device)
        yield
    finally:
        model.to(original_device)
        for module, training in modes.items():
            module.training = training


@contextlib.contextmanager
def full_float32_precision() -> Iterator[dict[str, str]]:
    """float32 matrix products and convolutions at full (IEEE) precision on CUDA for the
    block, TensorFloat-32 off, then the caller's settings back; yields the settings used.

    cuDNN convolutions use TF32 by default on Ampere and later GPUs, about 3 significant
    digits, enough to move an evaluation's figures in their last printed digit. The settings
    are the process's own, so an evaluation changes them for every thread while it runs.
    """
    with _matmul_precision("highest"), _cudnn_tf32(False):
        yield {"cuda_matmul": "ieee", "cudnn_conv": "ieee"}


# torch keeps its TF32 settings in two views, older (allow_tf32, float32_matmul_precision)
# and newer (fp32_precision), and refuses to read the older one after some mixes of the two.
# Each setting is changed through the older view, which keeps both in agreement, and put back
# through the older view where the caller's state could be read in it, then through the
# newer one where that differs still.


@contextlib.contextmanager
def _matmul_precision(precision: str) -> Iterator[None]:
    older = _readable(torch.get_float32_matmul_precision)
    newer = {torch.backends.cuda.matmul: torch.backends.cuda.matmul.fp32_precision}
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        if older is not None:
            torch.set_float32_matmul_precision(older)
        _put_back(newer)


@contextlib.contextmanager
def _cudnn_tf32(allowed: bool) -> Iterator[None]:
    cudnn = torch.backends.cudnn
    older = _readable(lambda: cudnn.allow_tf32)
    newer = {setting: setting.fp32_precision for setting in (cudnn.conv, cudnn.rnn)}
    cudnn.allow_tf32 = allowed
    try:
        yield
    finally:
        if older is not None:
            cudnn.allow_tf32 = older
        _put_back(newer)


def _readable(read: Callable[[], Any]) -> Any:
    """``read()``, or None where torch refuses to read a mix of its two views."""
    try:
        return read()
    except RuntimeError:
        return None


def _put_back(precisions: dict[Any, str]) -> None:
    for setting, precision in precisions.items():
        if setting.fp32_precision != precision:
            setting.fp32_precision = precision


def _describe_data(data: ImageSet) -> dict[str, Any]:
    return {"name": data.name, "split": data.split, "size": len(data), "file_md5s": data.file_md5s}


def _versions() -> dict[str, str]:
    return {
        "zoo": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torchmetrics": torchmetrics.__version__,
        "python": platform.python_version(),
    }
