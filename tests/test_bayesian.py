"""Bayes-by-Backprop layers and the Bayesian LeNet: sampling, KL, gradients, frozen mode."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

import zoo
from zoo.layers import BayesConv2d, BayesLinear, ScaleMixturePrior

MIXTURE = ScaleMixturePrior(pi=0.5, sigma1=1.0, sigma2=math.exp(-6))
GAUSSIAN = ScaleMixturePrior(pi=1.0, sigma1=0.5)


def randomise_posterior(model: torch.nn.Module) -> None:
    """Give every weight its own mean and a sigma between ~0.01 and ~0.3."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("_rho"):
                parameter.uniform_(-4.5, -1.0)
            else:
                parameter.normal_(0.0, 0.3)


def closed_form_kl(model: torch.nn.Module, prior_sigma: float) -> torch.Tensor:
    parameters = dict(model.named_parameters())
    total = torch.zeros((), dtype=torch.float64)
    for name, mu in parameters.items():
        if name.endswith("_mu"):
            sigma = F.softplus(parameters[name.removesuffix("_mu") + "_rho"]).double()
            posterior, prior = Normal(mu.double(), sigma), Normal(0.0, prior_sigma)
            total += kl_divergence(posterior, prior).sum()
    return total


def numerical_kl(mu: torch.Tensor, sigma: torch.Tensor, prior: ScaleMixturePrior) -> float:
    """KL(N(mu, sigma^2) || prior) summed over weights, by the trapezoid rule in float64."""
    total = 0.0
    for m, s in zip(mu.double().flatten().tolist(), sigma.double().flatten().tolist(), strict=True):
        grid = torch.linspace(m - 12 * s, m + 12 * s, 200_001, dtype=torch.float64)
        posterior = Normal(torch.tensor(m, dtype=torch.float64), torch.tensor(s))
        log_q = posterior.log_prob(grid)
        integrand = log_q.exp() * (log_q - prior.log_prob(grid))
        total += torch.trapezoid(integrand, grid).item()
    return total


def test_kl_matches_the_closed_form_for_a_single_gaussian_prior() -> None:
    model = zoo.create_model("bayesian_lenet", prior_pi=1.0, prior_sigma1=0.5)
    randomise_posterior(model)
    expected = closed_form_kl(model, prior_sigma=0.5)
    assert torch.allclose(zoo.kl_divergence(model).double(), expected, rtol=1e-5)
    assert torch.equal(zoo.kl_divergence(model), zoo.kl_divergence(model))  # no sampling


def test_equal_mixture_sigmas_are_a_single_gaussian_too() -> None:
    model = zoo.create_model("bayesian_lenet", prior_sigma1=0.3, prior_sigma2=0.3)
    randomise_posterior(model)
    assert torch.allclose(zoo.kl_divergence(model).double(), closed_form_kl(model, 0.3), rtol=1e-5)


@pytest.mark.parametrize("prior_pi", [1.0, 0.5, 0.25])
def test_kl_is_non_negative(prior_pi: float) -> None:
    model = zoo.create_model("bayesian_lenet", prior_pi=prior_pi)
    assert zoo.kl_divergence(model) > 0
    randomise_posterior(model)
    assert zoo.kl_divergence(model) > 0


def test_mixture_kl_estimate_is_unbiased() -> None:
    layer = BayesLinear(2, 2, prior=MIXTURE)
    randomise_posterior(layer)
    with torch.no_grad():
        layer.weight_rho[0, 0] = -8.0  # narrower than the prior's narrow component
        layer.weight_mu[0, 0] = 0.0
    weights = torch.cat([layer.weight_mu.flatten(), layer.bias_mu])
    sigmas = torch.cat([layer.weight_sigma.flatten(), layer.bias_sigma])
    exact = numerical_kl(weights.detach(), sigmas.detach(), MIXTURE)
    with torch.no_grad():
        estimates = torch.stack([layer.kl_divergence() for _ in range(4000)]).double()
    standard_error = estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean().item() - exact) < 5 * standard_error.item() + 1e-6


def test_kl_of_a_model_without_bayesian_layers_is_zero() -> None:
    assert zoo.kl_divergence(zoo.create_model("lenet")).item() == 0.0


@pytest.mark.parametrize("prior_pi", [1.0, 0.5])
def test_gradients_of_the_elbo_reach_mu_and_rho(prior_pi: float, images: torch.Tensor) -> None:
    model = zoo.create_model("bayesian_lenet", prior_pi=prior_pi)
    logits = model(images, samples=3)
    targets = torch.arange(6).repeat_interleave(3)
    nll = F.cross_entropy(logits.reshape(18, 10), targets)
    (nll + zoo.kl_divergence(model) / 60_000).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        assert torch.isfinite(parameter.grad).all(), name


def test_likelihood_gradients_reach_rho_through_the_sampled_weights(
    images: torch.Tensor,
) -> None:
    model = zoo.create_model("bayesian_lenet")
    model(images, samples=2).sum().backward()
    for name, parameter in model.named_parameters():
        if name.endswith("_rho"):
            assert parameter.grad.abs().sum() > 0, name


def test_each_sample_has_its_own_weights(images: torch.Tensor) -> None:
    model = zoo.create_model("bayesian_lenet").eval()
    same_image = images[:1].expand(4, 28, 28)
    logits = model(same_image, samples=3)  # (4, 3, 10)
    for sample in range(3):
        for other in range(sample):
            assert not torch.allclose(logits[:, sample], logits[:, other])
    assert not torch.allclose(logits[0], logits[1])  # linear layers draw per row, too


def test_conv_draws_differ_between_samples_and_have_the_posterior_moments() -> None:
    layer = BayesConv2d(1, 2, 3, prior=MIXTURE)
    randomise_posterior(layer)
    delta = torch.zeros(1, 1, 3, 3)
    delta[0, 0, 1, 1] = 1.0  # the output at the centre is w[:, 0, 1, 1] + b
    with torch.no_grad():
        outputs = layer(delta, samples=20_000).view(20_000, 2)
    assert not torch.allclose(outputs[0], outputs[1])
    expected_mean = layer.weight_mu[:, 0, 1, 1] + layer.bias_mu
    expected_std = (layer.weight_sigma[:, 0, 1, 1].square() + layer.bias_sigma.square()).sqrt()
    standard_error = expected_std / math.sqrt(20_000)
    assert ((outputs.mean(0) - expected_mean).abs() < 5 * standard_error).all()
    assert torch.allclose(outputs.std(0), expected_std.detach(), rtol=0.05)


def test_local_reparameterization_has_the_posterior_moments() -> None:
    layer = BayesLinear(3, 2, prior=MIXTURE)
    randomise_posterior(layer)
    inputs = torch.tensor([[1.0, -2.0, 0.5]]).expand(20_000, 3)
    with torch.no_grad():
        outputs = layer(inputs)
    expected_mean = inputs[0] @ layer.weight_mu.t() + layer.bias_mu
    expected_var = inputs[0].square() @ layer.weight_sigma.square().t() + layer.bias_sigma.square()
    standard_error = expected_var.sqrt() / math.sqrt(20_000)
    assert ((outputs.mean(0) - expected_mean).abs() < 5 * standard_error).all()
    assert torch.allclose(outputs.var(0), expected_var.detach(), rtol=0.05)


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (2, 1)])
def test_shared_input_path_equals_a_grouped_convolution(stride: int, padding: int) -> None:
    layer = BayesConv2d(2, 3, 3, prior=MIXTURE, stride=stride, padding=padding)
    inputs = torch.randn(4, 2, 9, 12)
    torch.manual_seed(5)
    shared = layer(inputs, samples=3)
    torch.manual_seed(5)
    grouped = layer(inputs.repeat(1, 3, 1, 1), samples=3)
    assert shared.shape == grouped.shape == (4, 9, *grouped.shape[2:])
    assert torch.allclose(shared, grouped, atol=1e-5)
    layer.frozen = True
    expected = F.conv2d(inputs, layer.weight_mu, layer.bias_mu, stride, padding)
    assert torch.allclose(layer(inputs), expected, atol=1e-5)


def test_conv_rejects_input_with_the_wrong_channel_count() -> None:
    layer = BayesConv2d(2, 3, 3, prior=MIXTURE)
    with pytest.raises(zoo.InvalidInputError, match=r"\(B, 2, H, W\)"):
        layer(torch.randn(1, 5, 9, 9), samples=2)


def test_frozen_model_uses_the_posterior_means_and_is_deterministic(
    images: torch.Tensor,
) -> None:
    model = zoo.create_model("bayesian_lenet")
    assert not model.frozen
    model.freeze()
    first = model(images, samples=16)
    assert first.shape == (6, 1, 10)
    assert torch.equal(first, model(images))
    x = model.prepare_input(images)
    for conv in (model.conv1, model.conv2):
        x = F.max_pool2d(F.conv2d(x, conv.weight_mu, conv.bias_mu), 2).relu()
    x = F.linear(x.flatten(1), model.fc1.weight_mu, model.fc1.bias_mu).relu()
    x = F.linear(x, model.fc2.weight_mu, model.fc2.bias_mu).relu()
    expected = F.linear(x, model.fc3.weight_mu, model.fc3.bias_mu)
    assert torch.allclose(first[:, 0], expected, atol=1e-5)
    prediction = model.predict(images)
    assert prediction.sample_probs.shape[1] == 1
    assert torch.equal(prediction.mutual_information, torch.zeros(6))
    model.unfreeze()
    assert not torch.allclose(model(images, samples=2), model(images, samples=2))


def test_a_seed_reproduces_a_bayesian_forward(images: torch.Tensor) -> None:
    model = zoo.create_model("bayesian_lenet").eval()
    torch.manual_seed(11)
    first = model(images, samples=4)
    torch.manual_seed(11)
    assert torch.equal(first, model(images, samples=4))


def test_vanishing_posterior_sigma_keeps_gradients_finite(images: torch.Tensor) -> None:
    model = zoo.create_model("bayesian_lenet", posterior_rho_init=-60.0)
    logits = model(images, samples=2).flatten(0, 1)
    loss = F.cross_entropy(logits, torch.arange(12) % 10) + zoo.kl_divergence(model) / 60_000
    loss.backward()
    for name, parameter in model.named_parameters():
        assert torch.isfinite(parameter.grad).all(), name


def test_kl_of_a_half_precision_model_is_finite() -> None:
    model = zoo.create_model("bayesian_lenet", prior_pi=1.0)
    expected = zoo.kl_divergence(model)
    half_kl = zoo.kl_divergence(model.half())
    assert torch.isfinite(half_kl)
    assert torch.allclose(half_kl, expected, rtol=1e-2)


def test_frozen_model_still_rejects_a_bad_sample_count(images: torch.Tensor) -> None:
    with pytest.raises(zoo.InvalidInputError):
        zoo.create_model("bayesian_lenet").freeze()(images, samples=0)


def test_kl_of_a_module_without_parameters_is_zero() -> None:
    assert zoo.kl_divergence(torch.nn.ReLU()).item() == 0.0


def test_kl_divergence_of_something_other_than_a_model_says_what_it_takes() -> None:
    with pytest.raises(zoo.InvalidInputError, match="kl_divergence takes a model, not int"):
        zoo.kl_divergence(5)  # type: ignore[arg-type]
