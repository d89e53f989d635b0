"""Temperature scaling: one number T, fitted on held-out images, that calibrates a model.

The model's logits are divided by T (each sample's logits, for a stochastic model): T > 1
softens an overconfident model, T < 1 sharpens an underconfident one. Each sample's class is
unchanged; for a stochastic model the average of the samples' probabilities, and so its class
and accuracy, can move slightly. T minimises the negative
log-likelihood of the predictive distribution on the 5,000 images the official recipes hold
out of MNIST's training set (its last 5,000), never on the test set.

References:
    Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass

import torch
from torch import Tensor

from zoo.data import load_dataset
from zoo.devices import check_seed, seeded, select_device, to_host
from zoo.errors import DatasetError, InvalidInputError
from zoo.evaluation import evaluating, full_float32_precision
from zoo.limits import MAX_TEMPERATURE
from zoo.models.base import ZooModel, check_positive_integer, check_samples
from zoo.options import DEFAULT_SAMPLES

HELD_OUT_IMAGES = 5000  # the last images of MNIST's training set, which the recipes hold out
_SEARCH_STEPS = 80  # golden-section steps on log T: the bracket shrinks to 1e-16 of its width


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature and what it did on the held-out images.

    Attributes:
        temperature: T.
        nll_before: the held-out NLL at T = 1.
        nll_after: the held-out NLL at T.
        images: how many held-out images it was fitted on.
        samples: S, the samples per image of a stochastic model (1 otherwise).
        seed: what seeded those samples.
    """

    temperature: float
    nll_before: float
    nll_after: float
    images: int
    samples: int
    seed: int


def calibrate(
    model: ZooModel,
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    device: str | torch.device = "auto",
    data_dir: str | os.PathLike[str] | None = None,
) -> ZooModel:
    """A copy of ``model`` with its temperature fitted on the held-out MNIST images (see
    `fit_temperature`); ``model`` itself is left as it is. ``save_pretrained`` keeps T."""
    fit = fit_temperature(model, samples=samples, seed=seed, device=device, data_dir=data_dir)
    calibrated = copy.deepcopy(model)
    calibrated.temperature = fit.temperature
    return calibrated


def fit_temperature(
    model: ZooModel,
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    device: str | torch.device = "auto",
    data_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 1000,
) -> TemperatureFit:
    """Fit T for ``model`` on the last `HELD_OUT_IMAGES` of MNIST's training set.

    The logits of the held-out images (S samples each, seeded with ``seed``) are computed once
    at T = 1; T then minimises their NLL, found by a golden-section search on log T over the
    temperatures a model may have. The model's device, mode and temperature are left as they
    were.

    Raises:
        InvalidInputError: ``model`` is not a zoo model, or a bad ``samples`` or ``seed``.
        DatasetError: the training split cannot be read, or holds too few images.
    """
    if not isinstance(model, ZooModel):
        raise InvalidInputError(f"calibrate takes a zoo model, not {type(model).__name__}")
    if any(parameter.is_meta for parameter in model.parameters()):
        raise InvalidInputError("the model is on the meta device, without values: nothing to fit")
    samples = check_samples(samples)
    check_seed(seed)
    check_positive_integer("batch_size", batch_size)
    target = select_device(device)
    split = load_dataset("mnist", "train", data_dir)
    if len(split) < HELD_OUT_IMAGES:
        raise DatasetError(
            f"MNIST's training split holds {len(split):,} images here, fewer than the "
            f"{HELD_OUT_IMAGES:,} held-out images a temperature is fitted on"
        )
    images = split.images[-HELD_OUT_IMAGES:]
    labels = split.targets[-HELD_OUT_IMAGES:]
    logits = _held_out_logits(model, images, samples, seed, target, batch_size)
    if not torch.isfinite(logits).all():
        raise InvalidInputError(
            "the model gives NaN or infinite logits on the held-out images: no temperature fits"
        )
    temperature = fit_temperature_to_logits(logits, labels)
    return TemperatureFit(
        temperature=temperature,
        nll_before=_nll(logits, labels, 1.0),
        nll_after=_nll(logits, labels, temperature),
        images=len(labels),
        samples=logits.shape[1],
        seed=seed,
    )


def fit_temperature_to_logits(logits: Tensor, labels: Tensor) -> float:
    """The T in [1 / `MAX_TEMPERATURE`, `MAX_TEMPERATURE`] that minimises the NLL of
    (N, S, C) finite ``logits`` divided by T, averaged over the S samples as probabilities,
    for the (N,) ``labels``; 1 where no T does better than 1 (the NLL of several samples
    need not have a single minimum in T, which the search assumes)."""
    if logits.dim() != 3 or labels.shape != logits.shape[:1] or labels.dtype != torch.long:
        raise InvalidInputError(
            f"logits must be (N, S, C) and labels (N,) integers, got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)} {labels.dtype}"
        )
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < logits.shape[2]:
        raise InvalidInputError(f"labels must be class indices below {logits.shape[2]}")
    low, high = -math.log(MAX_TEMPERATURE), math.log(MAX_TEMPERATURE)
    ratio = (math.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return _nll(logits, labels, math.exp(log_t))

    a, b = low + (1 - ratio) * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(_SEARCH_STEPS):
        if loss_a <= loss_b:
            high, b, loss_b = b, a, loss_a
            a = low + (1 - ratio) * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    bound = 1 / MAX_TEMPERATURE, MAX_TEMPERATURE
    best = min(max(math.exp((low + high) / 2), bound[0]), bound[1])
    return best if _nll(logits, labels, best) < _nll(logits, labels, 1.0) else 1.0


def _nll(logits: Tensor, labels: Tensor, temperature: float) -> float:
    """The mean NLL of the predictive distribution, the mean over S of the samples'
    softmax(logits / T), computed in the log domain."""
    log_probs = (logits / temperature).log_softmax(dim=-1)  # (N, S, C)
    predictive = log_probs.logsumexp(dim=1) - math.log(logits.shape[1])  # (N, C)
    return float(-predictive.gather(1, labels[:, None]).mean())


def _held_out_logits(
    model: ZooModel,
    images: Tensor,
    samples: int,
    seed: int,
    device: torch.device,
    batch_size: int,
) -> Tensor:
    """(N, S, C) logits at T = 1, float64 on the host, computed as an evaluation computes
    them: in eval mode, float32 at full precision, dropout and weight sampling as in
    prediction."""
    original_temperature = model.temperature
    try:
        model.temperature = 1.0
        with (
            evaluating(model, device),
            full_float32_precision(),
            seeded(seed, device),
            torch.no_grad(),
        ):
            batches = [
                model(chunk, samples) if model.stochastic else model(chunk).unsqueeze(1)
                for chunk in images.split(batch_size)
            ]
    finally:
        model.temperature = original_temperature
    return to_host(torch.cat(batches), torch.float64)
