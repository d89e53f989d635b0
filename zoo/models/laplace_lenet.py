"""LeNet-5 with a last-layer Laplace approximation (Daxberger et al., 2021, "Laplace Redux").

The network is trained as a plain LeNet-5 (the MAP weights). Afterwards its last layer gets a
Gaussian posterior: mean the MAP weights and biases, covariance the inverse of the generalised
Gauss-Newton (GGN) of the training loss in those weights plus a prior precision times the
identity (`zoo.laplace` fits it). With 84 features and C classes that is D = 85 * C numbers
(850 for MNIST), so the full covariance is kept, as a factor L with L L^T = Sigma.

A forward pass draws S samples of the last layer, mean + L z with z standard normal, and
applies each to the features, which the MAP network computes once per image. The logits are
linear in the last layer, so each image's S logits follow their exact Gaussian, with no
linearisation: mean the MAP logits, covariance (I (x) phi~^T) Sigma (I (x) phi~), phi~ being
the image's features with a 1 appended for the bias. As with the Bayesian LeNet's weights, the
images of a draw group share the group's S draws, which leaves each image's distribution as it
is and costs S x D^2 multiply-adds per group, about 90,000 per image for MNIST.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from zoo.errors import ModelConfigError
from zoo.limits import MAX_WEIGHTS_BYTES
from zoo.models.base import (
    DEFAULT_SAMPLES,
    ZooModel,
    build_model,
    check_samples,
    forward_in_chunks,
    images_per_draw,
)
from zoo.models.citations import DAXBERGER_2021, LECUN_1998, MACKAY_1992
from zoo.models.lenet import lenet_layers
from zoo.registry import register_model

FEATURES = 84  # the width of LeNet-5's last hidden layer


class LaplaceLeNet(ZooModel):
    """LeNet-5 whose last layer has a Gaussian (Laplace) posterior; its spread over the S
    samples of each image's logits is the model (epistemic) uncertainty.

    ``model(x, samples=S)`` returns logits (B, S, C): the MAP network's features once per
    image, then S draws of the last layer. Until a posterior is fitted
    (`zoo.fit_laplace`, or a recipe) or loaded, which a fresh model and one in training are, every
    sample is the MAP logits, and the pass costs what a LeNet-5's does.

    The buffers ``posterior_scale`` (D x D, L with L L^T = Sigma, rows and columns ordered as
    the last layer's [weight | bias] flattened class by class) and ``prior_precision`` (the
    prior's, chosen when fitting) are saved with the weights.

    Args:
        num_classes: number of output classes; at most as many as keep L within the weights
            file's size limit (96).
        class_labels, mean, std: see `ZooModel`.

    References:
        Daxberger, Kristiadi, Immer, Eschenhagen, Bauer & Hennig, "Laplace Redux - Effortless
        Bayesian Deep Learning", NeurIPS 2021; MacKay, "A Practical Bayesian Framework for
        Backpropagation Networks", Neural Computation 1992.
    """

    architecture = "laplace_lenet"
    stochastic = True
    about = (
        "a LeNet-5 with a last-layer Laplace approximation: the last layer's weights have a "
        "Gaussian posterior with a full covariance from the generalised Gauss-Newton, and the "
        "spread of 16 samples of the logits is the model (epistemic) uncertainty"
    )
    references = (LECUN_1998, MACKAY_1992, DAXBERGER_2021)

    def __init__(self, num_classes: int = 10, **common: Any) -> None:
        super().__init__(num_classes, **common)
        dimension = (FEATURES + 1) * self.num_classes
        if dimension * dimension * 4 > MAX_WEIGHTS_BYTES:
            raise ModelConfigError(
                f"laplace_lenet keeps a {dimension:,} x {dimension:,} covariance factor for "
                f"{num_classes:,} classes, more than a weights file may hold; use at most "
                f"{_max_classes()} classes"
            )
        self.layers = lenet_layers(self.num_classes, 0.0, 0.0)
        self.register_buffer("posterior_scale", torch.zeros(dimension, dimension))
        self.register_buffer("prior_precision", torch.zeros(()))
        self.register_load_state_dict_post_hook(_note_whether_fitted)
        self.fitted = False

    def set_posterior(self, scale: Tensor, prior_precision: float) -> None:
        """Take ``scale`` (D x D, a factor of the posterior covariance) and the prior
        precision it was fitted with; the last layer's weights are the posterior mean."""
        if (
            scale.shape != self.posterior_scale.shape
            or not math.isfinite(prior_precision)
            or not prior_precision > 0
            or not bool(torch.isfinite(scale).all())
        ):
            raise ModelConfigError(
                f"a posterior for laplace_lenet needs a finite {self.dimension} x "
                f"{self.dimension} scale and a finite positive prior precision, got "
                f"{tuple(scale.shape)} and {prior_precision!r}"
            )
        with torch.no_grad():
            self.posterior_scale.copy_(scale)
            self.prior_precision.fill_(prior_precision)
        self.fitted = True

    def architecture_kwargs(self) -> dict[str, Any]:
        return {}

    @property
    def dimension(self) -> int:
        """D, the number of last-layer weights and biases with a posterior."""
        return (FEATURES + 1) * self.num_classes

    def features(self, images: Tensor) -> Tensor:
        """The last layer's inputs, (B, 84), for normalised (B, 1, 28, 28) ``images``."""
        return self.layers[:-1](images)

    def forward(self, images: Tensor, samples: int = DEFAULT_SAMPLES) -> Tensor:
        """Logits (B, S, C): S draws of each image's Gaussian logits."""
        samples = check_samples(samples)
        features = self.prepare_input(images)
        return forward_in_chunks(self._draw, self._sample_chunk, features, samples)

    def _draw(self, images: int, samples: int) -> Tensor:
        """A draw group's S deviations of the last layer from its mean, L z: (S, C, 85); none
        without a posterior, so that training draws exactly as a `LeNet`'s does."""
        scale = self.posterior_scale
        if not self.fitted:
            return scale.new_empty(0)
        noise = torch.randn(samples, self.dimension, dtype=scale.dtype, device=scale.device)
        return (noise @ scale.T).view(samples, self.num_classes, FEATURES + 1)

    def _sample_chunk(self, images: Tensor, samples: int, draws: list[Tensor]) -> Tensor:
        hidden = self.features(images)
        logits = self.layers.fc3(hidden).unsqueeze(1)  # (N, 1, C): the MAP logits
        if not self.fitted:
            return logits.expand(-1, samples, -1)
        padded = torch.cat([hidden, hidden.new_ones(len(hidden), 1)], 1)  # (N, 85)
        group = images_per_draw(samples)
        deviations = [
            torch.einsum("nf,scf->nsc", rows, draw)
            for rows, draw in zip(padded.split(group), draws, strict=True)
        ]
        return logits + torch.cat(deviations)

    def logit_covariance(self, features: Tensor) -> Tensor:
        """Each image's logit covariance (N, C, C) under the posterior, from its (N, 84)
        features: (I (x) phi~^T) L L^T (I (x) phi~). What the samples follow; for checks."""
        classes = self.num_classes
        padded = torch.cat([features, features.new_ones(len(features), 1)], 1)  # (N, 85)
        scale = self.posterior_scale.view(classes, FEATURES + 1, self.dimension)
        projected = torch.einsum("nf,cfd->ncd", padded, scale)  # (N, C, D)
        return projected @ projected.transpose(1, 2)


def _note_whether_fitted(model: nn.Module, incompatible: Any) -> None:
    """After loading a state dict: a model with a positive prior precision has a posterior;
    one with a zero prior precision has none, and a scale of zeros. Anything else is refused."""
    assert isinstance(model, LaplaceLeNet)
    precision = float(model.prior_precision)
    scale_is_zero = not bool(model.posterior_scale.any())
    if not (math.isfinite(precision) and (precision > 0 or (precision == 0 and scale_is_zero))):
        raise ModelConfigError(
            f"laplace_lenet's prior_precision is {precision:g} with a "
            f"{'zero' if scale_is_zero else 'non-zero'} posterior_scale: a fitted posterior has "
            "a positive prior precision, an unfitted one 0 and a scale of zeros"
        )
    model.fitted = precision > 0


def _max_classes() -> int:
    classes = 1
    while ((FEATURES + 1) * (classes + 1)) ** 2 * 4 <= MAX_WEIGHTS_BYTES:
        classes += 1
    return classes


@register_model
def laplace_lenet(**kwargs: Any) -> LaplaceLeNet:
    """LeNet-5 with a last-layer Laplace posterior (Daxberger et al., 2021).

    Keyword arguments go to `LaplaceLeNet`.
    """
    return build_model(LaplaceLeNet, kwargs)
