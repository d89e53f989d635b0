"""The zoo's architectures. Importing this package registers them."""

from zoo.models.base import ZooModel
from zoo.models.bayesian_lenet import BayesianLeNet, bayesian_lenet
from zoo.models.ensemble import DeepEnsembleLeNet, deep_ensemble_lenet
from zoo.models.laplace_lenet import LaplaceLeNet, laplace_lenet
from zoo.models.lenet import LeNet, MCDropoutLeNet, lenet, mc_dropout_lenet

__all__ = [
    "BayesianLeNet",
    "DeepEnsembleLeNet",
    "LaplaceLeNet",
    "LeNet",
    "MCDropoutLeNet",
    "ZooModel",
    "bayesian_lenet",
    "deep_ensemble_lenet",
    "laplace_lenet",
    "lenet",
    "mc_dropout_lenet",
]
