"""LeNet-5 with every conv and linear layer a Bayes-by-Backprop layer (Blundell et al., 2015)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from zoo.errors import ModelConfigError
from zoo.layers.bayesian import BayesConv2d, BayesianLayer, BayesLinear, ScaleMixturePrior
from zoo.models.base import (
    DEFAULT_SAMPLES,
    ZooModel,
    build_model,
    check_number,
    check_samples,
    concatenated,
    forward_in_chunks,
    images_per_draw,
)
from zoo.models.citations import BLUNDELL_2015, LECUN_1998
from zoo.registry import register_model

_MAX_RHO = 1000.0  # |rho|: float32 holds it, and softplus(1000) = 1000 is sigma enough


class BayesianLeNet(ZooModel):
    """LeNet-5 whose weights are Gaussian posteriors, trained by Bayes by Backprop.

    ``model(x, samples=S)`` returns logits (B, S, C) from one batched pass in which each of
    the S samples has its own weight draw (see `zoo.layers.bayesian` for how). The images of
    a large batch share conv-weight draws in groups of `zoo.models.base.ROWS_PER_DRAW`
    image-samples, each group with its own S draws, whatever chunks the batch is computed
    in. After ``model.freeze()`` it uses the posterior means only and returns (B, 1, C);
    ``unfreeze()`` makes it stochastic again. Train it on the ELBO with `zoo.kl_divergence` as the
    complexity term.

    Args:
        num_classes: number of output classes.
        prior_pi: weight of the wide prior component.
        prior_sigma1: standard deviation of the wide prior component.
        prior_sigma2: standard deviation of the narrow prior component.
        posterior_rho_init: initial rho of every weight; sigma = softplus(rho) (-5 gives
            sigma ~ 0.0067).
        class_labels, mean, std: see `ZooModel`.

    References:
        Blundell et al., "Weight Uncertainty in Neural Networks", ICML 2015.
    """

    architecture = "bayesian_lenet"
    stochastic = True
    about = (
        "a LeNet-5 trained by Bayes by Backprop: every weight has a Gaussian posterior, and "
        "each of 16 samples draws its own weights"
    )
    references = (LECUN_1998, BLUNDELL_2015)

    def __init__(
        self,
        num_classes: int = 10,
        *,
        prior_pi: float = 0.5,
        prior_sigma1: float = 1.0,
        prior_sigma2: float = math.exp(-6),
        posterior_rho_init: float = -5.0,
        **common: Any,
    ) -> None:
        super().__init__(num_classes, **common)
        self.prior = ScaleMixturePrior(
            check_number("prior_pi", prior_pi),
            check_number("prior_sigma1", prior_sigma1),
            check_number("prior_sigma2", prior_sigma2),
        )
        self.posterior_rho_init = check_number("posterior_rho_init", posterior_rho_init)
        if abs(self.posterior_rho_init) > _MAX_RHO:  # beyond it, sigma is 0 or absurd
            raise ModelConfigError(
                f"posterior_rho_init must be within +-{_MAX_RHO:g}, got {posterior_rho_init!r}"
            )
        layer_options = {"prior": self.prior, "rho_init": self.posterior_rho_init}
        self.conv1 = BayesConv2d(1, 6, 5, **layer_options)
        self.conv2 = BayesConv2d(6, 16, 5, **layer_options)
        self.fc1 = BayesLinear(16 * 4 * 4, 120, **layer_options)
        self.fc2 = BayesLinear(120, 84, **layer_options)
        self.fc3 = BayesLinear(84, num_classes, **layer_options)

    def architecture_kwargs(self) -> dict[str, Any]:
        return {
            "prior_pi": self.prior.pi,
            "prior_sigma1": self.prior.sigma1,
            "prior_sigma2": self.prior.sigma2,
            "posterior_rho_init": self.posterior_rho_init,
        }

    @property
    def frozen(self) -> bool:
        """Whether the model uses its posterior means only."""
        return all(layer.frozen for layer in self._bayesian_layers())

    def freeze(self) -> BayesianLeNet:
        """Use the posterior means only: deterministic, and S = 1."""
        for layer in self._bayesian_layers():
            layer.frozen = True
        return self

    def unfreeze(self) -> BayesianLeNet:
        """Sample the weights again."""
        for layer in self._bayesian_layers():
            layer.frozen = False
        return self

    def forward(self, images: Tensor, samples: int = DEFAULT_SAMPLES) -> Tensor:
        """Logits (B, S, C); S = 1 when frozen."""
        samples = check_samples(samples)
        if self.frozen:
            samples = 1
        features = self.prepare_input(images)
        return forward_in_chunks(self._draw_noise, self._sample_chunk, features, samples)

    def _draw_noise(self, images: int, samples: int) -> _Noise | None:
        """One draw group's noise, layer by layer: S conv weight draws, shared by the group's
        images, and the linear layers' per-row noise. None when frozen."""
        if self.frozen:
            return None
        rows = images * samples
        return _Noise(
            conv1=self.conv1.draw_noise(samples),
            conv2=self.conv2.draw_noise(samples),
            fc=[layer.draw_noise(rows) for layer in (self.fc1, self.fc2, self.fc3)],
        )

    def _sample_chunk(self, features: Tensor, samples: int, draws: list[_Noise | None]) -> Tensor:
        groups = features.split(images_per_draw(samples))
        blocks = zip(groups, draws, strict=True)
        hidden = concatenated([self._conv_blocks(group, samples, noise) for group, noise in blocks])
        batch = features.shape[0]
        hidden = hidden.reshape(batch * samples, self.fc1.in_features)  # (B*S, 256)
        noise = [None] * 3 if draws[0] is None else _joined([group.fc for group in draws])
        hidden = self.fc1(hidden, noise[0]).relu()
        hidden = self.fc2(hidden, noise[1]).relu()
        return self.fc3(hidden, noise[2]).view(batch, samples, self.num_classes)

    def _conv_blocks(self, features: Tensor, samples: int, noise: _Noise | None) -> Tensor:
        """Both conv blocks of one draw group, whose images share its S conv weight draws."""
        conv1, conv2 = (None, None) if noise is None else (noise.conv1, noise.conv2)
        # Max-pooling before the ReLU gives the same result on a quarter of the values.
        hidden = F.max_pool2d(self.conv1(features, samples, conv1), 2).relu()  # (B, S*6, 12, 12)
        return F.max_pool2d(self.conv2(hidden, samples, conv2), 2).relu()  # (B, S*16, 4, 4)

    def _bayesian_layers(self) -> list[BayesianLayer]:
        return [module for module in self.modules() if isinstance(module, BayesianLayer)]


@dataclass(frozen=True)
class _Noise:
    """The standard normal noise of one draw group (see `BayesianLeNet._draw_noise`)."""

    conv1: tuple[Tensor, Tensor]
    conv2: tuple[Tensor, Tensor]
    fc: list[Tensor]


def _joined(groups: list[list[Tensor]]) -> list[Tensor]:
    """Each linear layer's noise for a chunk: its draw groups' noise, in batch order."""
    return [concatenated(layer) for layer in zip(*groups, strict=True)]


@register_model
def bayesian_lenet(**kwargs: Any) -> BayesianLeNet:
    """Bayes-by-Backprop LeNet-5 (Blundell et al., 2015).

    Keyword arguments go to `BayesianLeNet`.
    """
    return build_model(BayesianLeNet, kwargs)
