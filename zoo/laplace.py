"""Fitting a last-layer Laplace posterior to a trained LeNet-5 (`LaplaceLeNet`).

The posterior of the last layer's D = 85 * C weights and biases is Gaussian, with the trained
(MAP) weights as its mean and covariance Sigma = (G + delta I)^-1. G is the generalised
Gauss-Newton of the summed cross-entropy over the training images,

    G = sum_n (diag(p_n) - p_n p_n^T) (x) phi~_n phi~_n^T,

p_n being the MAP softmax and phi~_n the image's 84 features with a 1 appended, so that it is
exact for this layer (the logits are linear in its weights) and needs no labels. delta, the
prior precision, is chosen from a grid as the one whose predictive distribution (sampled as
`zoo.evaluate` samples it: 16 samples, seed 0) has the lowest NLL on the 5,000 held-out
training images. That is the figure the model is judged by, measured on images the MAP
weights never saw; the marginal likelihood (MacKay's evidence, the other usual choice) is
computed beside it for every delta and reported, but it is not what decides.

For each delta, the Cholesky factor R of the posterior precision G + delta I (R R^T) gives the
factor the model keeps, R^-T (R^-T R^-1 = Sigma), and the log-determinant the marginal
likelihood needs.

References:
    Daxberger et al., "Laplace Redux - Effortless Bayesian Deep Learning", NeurIPS 2021;
    MacKay, "A Practical Bayesian Framework for Backpropagation Networks", 1992.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from zoo.data import load_dataset
from zoo.devices import check_seed, seeded, select_device, to_host
from zoo.errors import DatasetError, InvalidInputError
from zoo.evaluation import evaluating, full_float32_precision
from zoo.models.base import ZooModel, check_samples
from zoo.models.laplace_lenet import FEATURES, LaplaceLeNet
from zoo.models.lenet import LeNet
from zoo.options import DEFAULT_SAMPLES
from zoo.temperature import HELD_OUT_IMAGES

# The prior precisions tried: 10^-3 to 10^5, eight to a decade.
PRIOR_PRECISIONS = tuple(10 ** (step / 8) for step in range(-24, 41))
_BATCH = 1000  # images per forward pass while fitting


@dataclass(frozen=True)
class LaplaceFit:
    """A fitted last-layer posterior and how its prior precision was chosen.

    Attributes:
        prior_precision: delta, the grid value with the lowest held-out NLL.
        held_out_nll: that NLL; ``map_held_out_nll`` is the MAP network's.
        evidence_prior_precision: the grid value with the highest log marginal likelihood.
        grid: (delta, held-out NLL, log marginal likelihood) for every delta tried.
        training_images, held_out_images, samples, seed: what it was fitted on and with.
    """

    prior_precision: float
    held_out_nll: float
    map_held_out_nll: float
    evidence_prior_precision: float
    grid: tuple[tuple[float, float, float], ...]
    training_images: int
    held_out_images: int
    samples: int
    seed: int


def fit_laplace(
    model: ZooModel,
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    device: str | torch.device = "auto",
    data_dir: str | os.PathLike[str] | None = None,
) -> tuple[LaplaceLeNet, LaplaceFit]:
    """A `LaplaceLeNet` fitted on MNIST for ``model``, a trained `LeNet` (without dropout) or a
    `LaplaceLeNet`: its weights, with a last-layer posterior fitted by `fit_posterior` on the
    first 55,000 training images, delta chosen on the last 5,000. ``model`` is left as it is.

    Raises:
        InvalidInputError: another kind of model, one with dropout or a temperature, or a bad
            ``samples`` or ``seed``.
        DatasetError: the training split cannot be read, or holds too few images.
    """
    fitted = _as_laplace_lenet(model)
    split = load_dataset("mnist", "train", data_dir)
    if len(split) <= HELD_OUT_IMAGES:
        raise DatasetError(
            f"MNIST's training split holds {len(split):,} images here; a posterior is fitted "
            f"on more than the {HELD_OUT_IMAGES:,} held out"
        )
    cut = len(split) - HELD_OUT_IMAGES
    fit = fit_posterior(
        fitted,
        split.images[:cut],
        split.images[cut:],
        split.targets[cut:],
        training_labels=split.targets[:cut],
        samples=samples,
        seed=seed,
        device=device,
    )
    return fitted, fit


def _as_laplace_lenet(model: ZooModel) -> LaplaceLeNet:
    _check_temperature(model)
    if isinstance(model, LaplaceLeNet):
        return copy.deepcopy(model)
    if not isinstance(model, LeNet) or model.conv_dropout or model.fc_dropout:
        raise InvalidInputError(
            "a Laplace posterior is fitted to a lenet without dropout or a laplace_lenet, not "
            f"{getattr(model, 'architecture', type(model).__name__)}"
        )
    fitted = LaplaceLeNet(
        model.num_classes, class_labels=model.class_labels, mean=model.mean, std=model.std
    )
    fitted.layers.load_state_dict(model.layers.state_dict(), strict=True)
    fitted.temperature = model.temperature
    return fitted


def fit_posterior(
    model: LaplaceLeNet,
    training_images: Tensor,
    held_out_images: Tensor,
    held_out_labels: Tensor,
    *,
    training_labels: Tensor | None = None,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    device: str | torch.device = "auto",
    prior_precisions: tuple[float, ...] = PRIOR_PRECISIONS,
) -> LaplaceFit:
    """Fit ``model``'s last-layer posterior in place: G on the uint8 ``training_images``,
    delta from ``prior_precisions`` by the held-out NLL of ``samples`` samples per image
    seeded with ``seed``. ``training_labels`` give the marginal likelihood's data term (it is
    reported as NaN without them). The model's device and mode are left as they were.

    A grid value whose posterior precision cannot be factorised, or whose held-out NLL is not
    finite, is recorded with a NaN NLL and never chosen. If the fit fails, the model keeps the
    posterior it had.

    Raises:
        InvalidInputError: a model with a temperature other than 1 (fit the posterior first,
            then calibrate), images that are not uint8, labels that do not match them, prior
            precisions that are not finite and positive, logits that are not finite, or no
            grid value that gives a finite held-out NLL.
    """
    if not isinstance(model, LaplaceLeNet):
        raise InvalidInputError(f"fit_posterior takes a laplace_lenet, not {type(model).__name__}")
    _check_temperature(model)
    _check_images_and_labels(training_images, training_labels, model.num_classes)
    _check_images_and_labels(held_out_images, held_out_labels, model.num_classes)
    if not prior_precisions or not all(math.isfinite(d) and d > 0 for d in prior_precisions):
        raise InvalidInputError("prior_precisions must be finite positive numbers, at least one")
    samples = check_samples(samples)
    check_seed(seed)
    target = select_device(device)
    before = (model.posterior_scale.clone(), float(model.prior_precision), model.fitted)
    try:
        with evaluating(model, target), full_float32_precision(), torch.no_grad():
            ggn, log_likelihood = _gauss_newton(model, training_images, training_labels, target)
            mean = _last_layer(model).double().cpu().flatten()
            held_out_labels = held_out_labels.to(target)
            model.fitted = False
            map_nll = _held_out_nll(model, held_out_images, held_out_labels, samples, seed)
            grid = []
            for delta in prior_precisions:
                posterior = _posterior(ggn, delta)
                if posterior is None:
                    grid.append((delta, math.nan, math.nan))
                    continue
                factor, log_determinant = posterior
                model.set_posterior(factor.to(target), delta)
                nll = _held_out_nll(model, held_out_images, held_out_labels, samples, seed)
                evidence = (
                    log_likelihood
                    - 0.5 * delta * float(mean @ mean)
                    + 0.5 * len(mean) * math.log(delta)
                    - 0.5 * log_determinant
                )
                grid.append((delta, nll if math.isfinite(nll) else math.nan, evidence))
            best = _best(grid, 1, min)
            if best is None:
                raise InvalidInputError(
                    "no prior precision gives a finite held-out NLL: no posterior fits"
                )
            chosen = _posterior(ggn, best[0])
            assert chosen is not None  # it factorised a moment ago
            model.set_posterior(chosen[0].to(target), best[0])
    except BaseException:
        scale, precision, fitted = before
        with torch.no_grad():
            model.posterior_scale.copy_(scale)
            model.prior_precision.fill_(precision)
        model.fitted = fitted
        raise
    by_evidence = _best(grid, 2, max)
    return LaplaceFit(
        prior_precision=best[0],
        held_out_nll=best[1],
        map_held_out_nll=map_nll,
        evidence_prior_precision=by_evidence[0] if by_evidence else math.nan,
        grid=tuple(grid),
        training_images=len(training_images),
        held_out_images=len(held_out_images),
        samples=samples,
        seed=seed,
    )


def _best(
    grid: list[tuple[float, float, float]], column: int, pick: Callable[..., Any]
) -> tuple[float, float, float] | None:
    """The row whose ``column`` ``pick`` (min or max) chooses among the finite ones."""
    finite = [row for row in grid if math.isfinite(row[column])]
    return pick(finite, key=lambda row: row[column]) if finite else None


def _check_images_and_labels(images: Tensor, labels: Tensor | None, classes: int) -> None:
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 3:
        raise InvalidInputError("fit_posterior takes uint8 (N, 28, 28) images")
    if images.shape[1:] != (28, 28) or not len(images):
        raise InvalidInputError(
            f"fit_posterior takes uint8 (N, 28, 28) images, N > 0; got {tuple(images.shape)}"
        )
    if labels is None:
        return
    if not isinstance(labels, Tensor) or labels.shape != images.shape[:1]:
        raise InvalidInputError("the labels must be (N,), one for each image")
    if labels.dtype != torch.long or not 0 <= int(labels.min()) <= int(labels.max()) < classes:
        raise InvalidInputError(f"the labels must be int64 class indices below {classes}")


def _check_temperature(model: ZooModel) -> None:
    if isinstance(model, ZooModel) and model.temperature != 1.0:
        raise InvalidInputError(
            f"the model has temperature {model.temperature:g}: fit its posterior at "
            "temperature 1, then calibrate it"
        )


def _last_layer(model: LaplaceLeNet) -> Tensor:
    """The posterior mean: the last layer's [weight | bias], (C, 85)."""
    fc3 = model.layers.fc3
    return torch.cat([fc3.weight, fc3.bias[:, None]], 1)


def _gauss_newton(
    model: LaplaceLeNet, images: Tensor, labels: Tensor | None, device: torch.device
) -> tuple[Tensor, float]:
    """G, (D, D) float64 on the CPU, ordered as the flattened [weight | bias]; and the summed
    log-likelihood of ``labels`` under the MAP network (NaN without labels)."""
    classes, width = model.num_classes, FEATURES + 1
    blocks = torch.zeros(classes * classes, width * width, dtype=torch.float64)
    log_likelihood = 0.0 if labels is not None else math.nan
    for start in range(0, len(images), _BATCH):
        features = model.features(model.prepare_input(images[start : start + _BATCH]))
        logits = model.layers.fc3(features)
        if not torch.isfinite(logits).all():
            raise InvalidInputError("the model gives NaN or infinite logits: no posterior fits")
        # float64 on the host: G is singular (adding one vector to every class's weights
        # leaves the softmax alone), and float32 sums leave that null space slightly negative.
        features, logits = to_host(features, torch.float64), to_host(logits, torch.float64)
        padded = torch.cat([features, features.new_ones(len(features), 1)], 1)
        probs = logits.softmax(-1)
        curvature = torch.diag_embed(probs) - probs[:, :, None] * probs[:, None, :]
        outer = padded[:, :, None] * padded[:, None, :]
        blocks += curvature.flatten(1).T @ outer.flatten(1)  # (C*C, 85*85)
        if labels is not None:
            batch_labels = labels[start : start + _BATCH].cpu()
            log_likelihood += float(logits.log_softmax(-1).gather(1, batch_labels[:, None]).sum())
    # [c, c', i, j] -> [(c, i), (c', j)]
    ggn = blocks.view(classes, classes, width, width).permute(0, 2, 1, 3)
    ggn = ggn.reshape(classes * width, classes * width)
    return (ggn + ggn.T) / 2, log_likelihood


def _posterior(ggn: Tensor, delta: float) -> tuple[Tensor, float] | None:
    """A float32 factor of the covariance (G + delta I)^-1, and the log-determinant of
    G + delta I, from its Cholesky factor in float64; None where it cannot be factorised."""
    identity = torch.eye(len(ggn), dtype=ggn.dtype)
    root, info = torch.linalg.cholesky_ex(ggn + delta * identity)
    if int(info) != 0:
        return None
    factor = torch.linalg.solve_triangular(root.T, identity, upper=True)  # R^-T
    if not bool(torch.isfinite(factor).all()):
        return None
    return factor.float(), 2 * float(root.diagonal().log().sum())


def _held_out_nll(
    model: LaplaceLeNet, images: Tensor, labels: Tensor, samples: int, seed: int
) -> float:
    """The NLL of the predictive distribution (the mean of the samples' probabilities)."""
    total = 0.0
    with seeded(seed, labels.device):
        for start in range(0, len(images), _BATCH):
            logits = model(images[start : start + _BATCH], samples)
            log_probs = logits.log_softmax(-1).logsumexp(1) - math.log(samples)
            batch_labels = labels[start : start + _BATCH]
            total -= float(to_host(log_probs.gather(1, batch_labels[:, None]).sum(), torch.float64))
    return total / len(images)
