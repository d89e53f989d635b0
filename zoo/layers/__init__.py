"""Building blocks of the zoo's stochastic models."""

from zoo.layers.bayesian import (
    BayesConv2d,
    BayesianLayer,
    BayesLinear,
    ScaleMixturePrior,
    kl_divergence,
)

__all__ = ["BayesConv2d", "BayesLinear", "BayesianLayer", "ScaleMixturePrior", "kl_divergence"]
