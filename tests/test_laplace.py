"""The last-layer Laplace LeNet: its Gauss-Newton, its sampling, its fit, saving and training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo.laplace import _gauss_newton, fit_laplace, fit_posterior
from zoo.models import LaplaceLeNet
from zoo.models.laplace_lenet import FEATURES


def fitted_model(precision: float = 3.0) -> LaplaceLeNet:
    """A laplace_lenet with a random posterior factor."""
    model = zoo.create_model("laplace_lenet").eval()
    dimension = model.dimension
    scale = torch.randn(dimension, dimension) / dimension**0.5
    model.set_posterior(scale, precision)
    return model


def test_without_a_posterior_every_sample_is_the_map_logits(images: torch.Tensor) -> None:
    model = zoo.create_model("laplace_lenet").eval()
    lenet = zoo.create_model("lenet").eval()
    lenet.layers.load_state_dict(model.layers.state_dict())
    before = torch.get_rng_state()
    logits = model(images, samples=4)
    assert torch.equal(torch.get_rng_state(), before)  # draws nothing, as a LeNet
    assert logits.shape == (6, 4, 10)
    for sample in range(4):
        torch.testing.assert_close(logits[:, sample], lenet(images), rtol=0, atol=0)


def test_the_gauss_newton_is_the_jacobians_curvature(images: torch.Tensor) -> None:
    model = zoo.create_model("laplace_lenet").eval()
    with torch.no_grad():
        model.layers.fc3.weight.mul_(5)  # confident, unequal probabilities
    ggn, _ = _gauss_newton(model, images, None, torch.device("cpu"))
    expected = torch.zeros_like(ggn)
    features = model.features(model.prepare_input(images)).detach().double()
    weight, bias = model.layers.fc3.weight.double(), model.layers.fc3.bias.double()
    for row in features:

        def logits(flat: torch.Tensor, row: torch.Tensor = row) -> torch.Tensor:
            matrix = flat.view(10, FEATURES + 1)
            return matrix[:, :-1] @ row + matrix[:, -1]

        mean = torch.cat([weight, bias[:, None]], 1).flatten()
        jacobian = torch.autograd.functional.jacobian(logits, mean)  # (C, D)
        probs = logits(mean).softmax(-1)
        curvature = torch.diag(probs) - probs[:, None] * probs[None, :]
        expected += jacobian.T @ curvature @ jacobian
    torch.testing.assert_close(ggn, expected, rtol=1e-4, atol=1e-6)


def test_the_samples_follow_the_posterior_over_the_last_layer(images: torch.Tensor) -> None:
    """Sampled in logit space, they match drawing the last layer's weights from N(mean, L L^T)."""
    model = fitted_model()
    image = images[:1]
    logits = model(image, samples=1024)[0].double()  # (S, C)
    features = model.features(model.prepare_input(image))[0].detach().double()
    padded = torch.cat([features, torch.ones(1, dtype=torch.float64)])
    weights = torch.randn(20_000, model.dimension, dtype=torch.float64)
    drawn = weights @ model.posterior_scale.double().T  # (N, D): draws of weight - mean
    by_weights = drawn.view(-1, 10, FEATURES + 1) @ padded  # (N, C) logit deviations
    mean = model.layers.fc3(features.float()).double()
    torch.testing.assert_close(logits.mean(0), mean, atol=0.25, rtol=0)
    spread, expected = logits.std(0), by_weights.std(0)
    assert ((spread / expected - 1).abs() < 0.1).all(), (spread, expected)
    correlation = torch.corrcoef(logits.T)[0, 1]
    expected_correlation = torch.corrcoef(by_weights.T)[0, 1]
    assert abs(correlation - expected_correlation) < 0.1


def test_a_fitted_model_saves_and_loads_strictly_with_its_posterior(
    images: torch.Tensor, tmp_path: Path
) -> None:
    model = fitted_model(precision=7.5)
    model.save_pretrained(tmp_path / "model")
    loaded = zoo.from_pretrained(tmp_path / "model")
    assert isinstance(loaded, LaplaceLeNet) and loaded.fitted
    assert float(loaded.prior_precision) == 7.5
    torch.manual_seed(1)
    first = model(images, samples=3)
    torch.manual_seed(1)
    torch.testing.assert_close(loaded(images, samples=3), first, rtol=0, atol=0)
    assert first.std(1).min() > 0


def test_a_posterior_that_is_not_finite_never_predicts(images: torch.Tensor) -> None:
    model = fitted_model()
    with torch.no_grad():
        model.posterior_scale[3, 5] = float("nan")
    with pytest.raises(zoo.InvalidInputError, match="NaN"):
        model.predict(images)


def test_too_many_classes_for_a_covariance_factor_is_refused_before_allocating() -> None:
    with pytest.raises(zoo.ModelConfigError, match="at most 96 classes"):
        zoo.create_model("laplace_lenet", num_classes=100_000)
    assert zoo.create_model("laplace_lenet", num_classes=96).dimension == 85 * 96


def test_the_fit_picks_the_prior_precision_with_the_lowest_held_out_nll(
    tiny_data_root: Path,
) -> None:
    split = zoo.data.load_dataset("mnist", "train", tiny_data_root)
    model = zoo.create_model("laplace_lenet")
    grid = (0.1, 1.0, 10.0, 100.0)
    fit = fit_posterior(
        model,
        split.images[:40],
        split.images[40:],
        split.targets[40:],
        training_labels=split.targets[:40],
        samples=4,
        prior_precisions=grid,
        device="cpu",
    )
    assert [row[0] for row in fit.grid] == list(grid)
    assert fit.held_out_nll == min(row[1] for row in fit.grid)
    assert fit.evidence_prior_precision == max(fit.grid, key=lambda row: row[2])[0]
    assert model.fitted and float(model.prior_precision) == pytest.approx(fit.prior_precision)
    # a larger prior precision pulls the posterior in: 100 gives a tenth of 1's variance or less
    variances = {}
    for precision in (1.0, 100.0):
        fit_posterior(
            model,
            split.images[:40],
            split.images[40:],
            split.targets[40:],
            samples=4,
            prior_precisions=(precision,),
            device="cpu",
        )
        variances[precision] = model.posterior_scale.square().sum()
    assert variances[100.0] < variances[1.0] / 10


def test_laplace_takes_a_lenet_and_refuses_what_it_cannot_fit(tiny_data_root: Path) -> None:
    for model in (zoo.create_model("mc_dropout_lenet"), zoo.create_model("bayesian_lenet")):
        with pytest.raises(zoo.InvalidInputError, match="lenet without dropout"):
            fit_laplace(model, data_dir=tiny_data_root)
    hot = zoo.create_model("laplace_lenet")
    hot.temperature = 2.0
    with pytest.raises(zoo.InvalidInputError, match="temperature 1"):
        fit_laplace(hot, data_dir=tiny_data_root)
    with pytest.raises(zoo.DatasetError, match="more than the 5,000 held out"):
        fit_laplace(zoo.create_model("lenet"), data_dir=tiny_data_root)


def test_a_recipe_trains_the_map_as_a_lenet_then_fits_the_posterior(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    from zoo.training import parse_recipe, train

    def recipe(architecture: str) -> str:
        return f"""
name = "l"
seed = 2
[model]
architecture = "{architecture}"
[data]
validation_size = 10
max_rotation = 10.0
[training]
epochs = 2
batch_size = 8
[evaluation]
samples = 4
"""

    laplace_model = train(
        parse_recipe(recipe("laplace_lenet")), tmp_path / "l", data_dir=tiny_data_root
    )
    lenet = train(parse_recipe(recipe("lenet")), tmp_path / "m", data_dir=tiny_data_root)
    assert isinstance(laplace_model, LaplaceLeNet) and laplace_model.fitted
    for name, value in lenet.layers.state_dict().items():  # the same MAP, bit for bit
        assert torch.equal(value, laplace_model.layers.state_dict()[name]), name
    report = json.loads((tmp_path / "l" / "eval.json").read_text())
    loaded = zoo.from_pretrained(tmp_path / "l")
    assert loaded.fitted
    assert (
        report["provenance"]["weights_sha256"]
        == json.loads((tmp_path / "l" / "config.json").read_text())["weights_sha256"]
    )
    without_held_out = recipe("laplace_lenet").replace(
        "validation_size = 10", "validation_size = 0"
    )
    with pytest.raises(zoo.RecipeError, match="prior precision is chosen on them"):
        parse_recipe(without_held_out)
