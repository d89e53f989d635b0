"""LeNet-5 with a last-layer Laplace approximation (Daxberger et al., 2021, "Laplace Redux").

The network is trained as a plain LeNet-5 (the MAP weights). Afterwards its last layer gets a
Gaussian posterior: mean the MAP weights and biases, covariance the inverse of the generalised
Gauss-Newton (GGN) of the training loss in those weights plus a prior precision times the
identity (`zoo.laplace` fits it). With 84 features and C classes that is D = 85 * C numbers
(850 for MNIST), so the full covariance is kept, as a factor L with L L^T = Sigma.

Since the logits are linear in the last layer's weights, the posterior on the weights gives
each image's logits a Gaussian exactly, with no linearisation: mean the MAP logits, covariance
(I (x) phi~^T) Sigma (I (x) phi~), phi~ being the image's features with a 1 appended for the
bias. A forward pass samples that C-dimensional Gaussian S times per image, which is the same
distribution as drawing S weight samples for every image, at a fraction of the cost.
"""

from __future__ import annotations

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
)
from zoo.models.citations import DAXBERGER_2021, LECUN_1998, MACKAY_1992
from zoo.models.lenet import lenet_layers
from zoo.registry import register_model

FEATURES = 84  # the width of LeNet-5's last hidden layer
# Images whose logit covariance is computed at once: (N, C, D) floats, 34 MB for MNIST.
_COVARIANCE_IMAGES = 1024


class LaplaceLeNet(ZooModel):
    """LeNet-5 whose last layer has a Gaussian (Laplace) posterior; its spread over the S
    samples of each image's logits is the model (epistemic) uncertainty.

    ``model(x, samples=S)`` returns logits (B, S, C): the MAP network's features once per
    image, then S draws of the logits' Gaussian. Until a posterior is fitted
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
        if scale.shape != self.posterior_scale.shape or not prior_precision > 0:
            raise ModelConfigError(
                f"a posterior for laplace_lenet needs a {self.dimension} x {self.dimension} "
                f"scale and a positive prior precision, got {tuple(scale.shape)} and "
                f"{prior_precision!r}"
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
        """A draw group's standard normal noise, (N, S, C); none without a posterior, so that
        training draws from its generators exactly as a `LeNet`'s does."""
        weight = self.layers.fc3.weight
        if not self.fitted:
            return weight.new_empty(0)
        return torch.randn(
            images, samples, self.num_classes, dtype=weight.dtype, device=weight.device
        )

    def _sample_chunk(self, images: Tensor, samples: int, draws: list[Tensor]) -> Tensor:
        hidden = self.features(images)
        logits = self.layers.fc3(hidden).unsqueeze(1)  # (N, 1, C): the MAP logits
        if not self.fitted:
            return logits.expand(-1, samples, -1)
        noise = draws[0] if len(draws) == 1 else torch.cat(draws)  # (N, S, C)
        scale = self.logit_scale(hidden)  # (N, C, C)
        return logits + noise @ scale.transpose(1, 2)

    def logit_scale(self, features: Tensor) -> Tensor:
        """A factor (N, C, C) of each image's logit covariance, from its (N, 84) features:
        the Cholesky factor of (I (x) phi~^T) L L^T (I (x) phi~), with a jitter of 1e-6 of its
        mean variance on the diagonal, which keeps the factorisation defined in float32."""
        classes = self.num_classes
        padded = torch.cat([features, features.new_ones(len(features), 1)], 1)  # (N, 85)
        # L's rows grouped by class: (C, 85, D) -> (85, C * D)
        scale = self.posterior_scale.view(classes, FEATURES + 1, self.dimension)
        scale = scale.transpose(0, 1).reshape(FEATURES + 1, classes * self.dimension)
        factors = []
        for rows in padded.split(_COVARIANCE_IMAGES):
            projected = (rows @ scale).view(len(rows), classes, self.dimension)  # (n, C, D)
            covariance = projected @ projected.transpose(1, 2)  # (n, C, C)
            jitter = 1e-6 * covariance.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-12)
            eye = torch.eye(classes, dtype=covariance.dtype, device=covariance.device)
            factor, _ = torch.linalg.cholesky_ex(covariance + jitter[:, None, None] * eye)
            factors.append(factor)
        return torch.cat(factors)


def _note_whether_fitted(model: nn.Module, incompatible: Any) -> None:
    """After loading a state dict: a model with a positive prior precision has a posterior."""
    assert isinstance(model, LaplaceLeNet)
    model.fitted = bool(model.prior_precision > 0)


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
