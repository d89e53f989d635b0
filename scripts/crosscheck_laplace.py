"""Cross-check zoo's last-layer Laplace fit against laplace-torch's, on the same network and data.

zoo fits the posterior itself (`zoo.laplace`); this script fits laplace-torch's
``Laplace(..., subset_of_weights="last_layer", hessian_structure="full")`` to the same MAP
network (the shipped lenet.mnist by default) on the same training images, at the same prior
precision, and prints the largest differences between:

- the two Gauss-Newton matrices (laplace-torch's ``H``, reordered to zoo's [weight | bias]
  class by class), relative to the largest entry;
- the two posterior covariances, relative to the largest entry;
- the logit covariances of test images (laplace-torch's GLM predictive ``f_var`` against zoo's
  `LaplaceLeNet.logit_covariance`), relative to the largest entry;

and exits 1 if any is above 1e-3. laplace-torch is an optional extra (``pip install
uncertainty-zoo[laplace]``); it is not needed to load or run a laplace_lenet.

    python scripts/crosscheck_laplace.py --data-dir DATA [--model lenet.mnist] [--images 55000]
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.utils.data import DataLoader, TensorDataset

import zoo
from zoo.data import load_dataset
from zoo.laplace import fit_posterior
from zoo.models.laplace_lenet import FEATURES, LaplaceLeNet
from zoo.temperature import HELD_OUT_IMAGES

TOLERANCE = 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--data-dir", help="data root holding MNIST/raw")
    parser.add_argument("--model", default="lenet.mnist", help="a lenet or laplace_lenet")
    parser.add_argument("--images", type=int, default=55_000, help="training images to fit on")
    parser.add_argument("--prior-precision", type=float, default=10.0)
    arguments = parser.parse_args()
    try:
        from laplace import Laplace
    except ImportError:
        sys.exit("error: laplace-torch is not installed (pip install 'uncertainty-zoo[laplace]')")

    split = load_dataset("mnist", "train", arguments.data_dir)
    training = split.images[: min(arguments.images, len(split) - HELD_OUT_IMAGES)]
    held_out = split.images[-HELD_OUT_IMAGES:], split.targets[-HELD_OUT_IMAGES:]
    test = load_dataset("mnist", "test", arguments.data_dir).images[:500]

    ours = _as_laplace_lenet(zoo.load(arguments.model))
    fit_posterior(
        ours,
        training,
        *held_out,
        prior_precisions=(arguments.prior_precision,),
        device="cpu",
    )
    classes = ours.num_classes
    order = _zoo_order(classes)

    network = _plain_network(ours)
    inputs = ours.prepare_input(training).detach()
    loader = DataLoader(
        TensorDataset(inputs, split.targets[: len(training)]), batch_size=1000, shuffle=False
    )
    reference = Laplace(
        network,
        "classification",
        subset_of_weights="last_layer",
        hessian_structure="full",
        prior_precision=arguments.prior_precision,
    )
    reference.fit(loader)

    from zoo.laplace import _gauss_newton

    with torch.no_grad():
        ggn, _ = _gauss_newton(ours, training, None, torch.device("cpu"))
    their_ggn = reference.H.double()[order][:, order]
    their_covariance = reference.posterior_covariance.double()[order][:, order]
    our_covariance = ours.posterior_scale.double() @ ours.posterior_scale.double().T
    with torch.no_grad():
        test_inputs = ours.prepare_input(test)
        _, their_logit_covariance = reference._glm_predictive_distribution(test_inputs)
        our_logit_covariance = ours.logit_covariance(ours.features(test_inputs)).double()
    differences = {
        "Gauss-Newton": _relative(ggn, their_ggn),
        "posterior covariance": _relative(our_covariance, their_covariance),
        "logit covariance (500 test images)": _relative(
            our_logit_covariance, their_logit_covariance.double()
        ),
    }
    print(
        f"{arguments.model}: {len(training):,} training images, prior precision "
        f"{arguments.prior_precision:g}, laplace-torch {_version()}"
    )
    for what, difference in differences.items():
        print(f"  largest difference in the {what}: {difference:.2e} of its largest entry")
    if max(differences.values()) > TOLERANCE:
        sys.exit(1)


def _as_laplace_lenet(model: zoo.ZooModel) -> LaplaceLeNet:
    if isinstance(model, LaplaceLeNet):
        return model
    fitted = LaplaceLeNet(model.num_classes, mean=model.mean, std=model.std)
    fitted.layers.load_state_dict(model.layers.state_dict(), strict=True)
    return fitted.eval()


def _plain_network(model: LaplaceLeNet) -> torch.nn.Sequential:
    """The MAP network as laplace-torch takes it: a module whose last layer is a Linear."""
    network = torch.nn.Sequential(*list(model.layers.children())).eval()
    for parameter in network.parameters():
        parameter.requires_grad_(True)
    return network


def _zoo_order(classes: int) -> torch.Tensor:
    """laplace-torch's index of each of zoo's last-layer parameters: it flattens the weight
    (C x 84) then the bias (C); zoo takes each class's 84 weights and its bias in turn."""
    weights = torch.arange(classes * FEATURES).view(classes, FEATURES)
    biases = classes * FEATURES + torch.arange(classes)
    return torch.cat([weights, biases[:, None]], 1).flatten()


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


def _version() -> str:
    from importlib.metadata import version

    return version("laplace-torch")


if __name__ == "__main__":
    main()
