"""The last-layer Laplace LeNet: its Gauss-Newton, its sampling, its fit, saving and training."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.laplace import LaplaceFit, _gauss_newton, fit_laplace, fit_posterior
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


def tiny_fit(
    tiny_data_root: Path, model: LaplaceLeNet, prior_precisions: tuple[float, ...]
) -> LaplaceFit:
    split = zoo.data.load_dataset("mnist", "train", tiny_data_root)
    return fit_posterior(
        model,
        split.images[:40],
        split.images[40:],
        split.targets[40:],
        training_labels=split.targets[:40],
        samples=4,
        prior_precisions=prior_precisions,
        device="cpu",
    )


def test_the_samples_follow_the_posterior_even_along_the_gauss_newtons_null_space(
    tiny_data_root: Path, images: torch.Tensor
) -> None:
    """At a small prior precision the logits' variance is huge along the direction that moves
    every class alike (G is singular there) and small across classes; both must be right."""
    model = zoo.create_model("laplace_lenet").eval()
    tiny_fit(tiny_data_root, model, (1e-3,))
    image = images[:1]
    logits = model(image, samples=1024)[0].double()  # (S, C)
    features = model.features(model.prepare_input(image)).detach()
    covariance = model.logit_covariance(features)[0].double()
    mean = model.layers.fc3(features)[0].double()
    spread = logits.std(0)
    assert ((logits.mean(0) - mean).abs() < 4 * spread / 1024**0.5 + 1e-6).all()
    assert ((spread / covariance.diagonal().sqrt() - 1).abs() < 0.1).all()
    # across classes, what the softmax sees: the variance of each logit minus the mean logit
    centred = logits - logits.mean(1, keepdim=True)
    projector = torch.eye(10, dtype=torch.float64) - 1 / 10
    expected = (projector @ covariance @ projector).diagonal().sqrt()
    assert ((centred.std(0) / expected - 1).abs() < 0.1).all()
    assert covariance.diagonal().mean() > 10 * expected.square().mean()  # the test bites


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
    with pytest.raises(zoo.ModelConfigError, match="finite"):
        model.set_posterior(model.posterior_scale, 1.0)
    with pytest.raises(zoo.ModelConfigError, match="finite"):
        fitted_model(precision=math.inf)


@pytest.mark.parametrize(
    ("precision", "scale"), [(-1.0, "random"), (0.0, "random"), (-1.0, "zeros")]
)
def test_a_saved_posterior_that_makes_no_sense_is_refused_on_load(
    precision: float, scale: str, tmp_path: Path
) -> None:
    model = fitted_model()
    with torch.no_grad():
        model.prior_precision.fill_(precision)
        if scale == "zeros":
            model.posterior_scale.zero_()
    model.save_pretrained(tmp_path / "model")
    with pytest.raises(zoo.ZooError):
        zoo.from_pretrained(tmp_path / "model")


def test_the_posterior_goes_with_copies_and_moves() -> None:
    model = fitted_model()
    assert copy.deepcopy(model).fitted and model.to("cpu").fitted
    assert not zoo.create_model("laplace_lenet").fitted


def test_too_many_classes_for_a_covariance_factor_is_refused_before_allocating() -> None:
    with pytest.raises(zoo.ModelConfigError, match="at most 96 classes"):
        zoo.create_model("laplace_lenet", num_classes=100_000)
    assert zoo.create_model("laplace_lenet", num_classes=96).dimension == 85 * 96


def test_the_fit_picks_the_lowest_held_out_nll_and_reports_the_evidence(
    tiny_data_root: Path,
) -> None:
    split = zoo.data.load_dataset("mnist", "train", tiny_data_root)
    model = zoo.create_model("laplace_lenet")
    with torch.no_grad():
        model.layers.fc3.weight.mul_(3)
    grid = (0.1, 1.0, 10.0, 100.0)
    fit = tiny_fit(tiny_data_root, model, grid)
    assert [row[0] for row in fit.grid] == list(grid)
    assert model.fitted and float(model.prior_precision) == pytest.approx(fit.prior_precision)
    # the chosen model's held-out NLL, measured here through predict
    held_out, labels = split.images[40:], split.targets[40:]
    with zoo.devices.seeded(0):
        log_probs = model.eval().predict(held_out, samples=4).log_probs
    assert fit.held_out_nll == pytest.approx(float(F.nll_loss(log_probs, labels)), rel=1e-5)
    assert all(fit.held_out_nll <= nll for _, nll, _ in fit.grid)
    assert fit.map_held_out_nll > 0
    # the evidence: log p(y | MAP) + log N(mean; 0, I / delta) + D/2 log 2 pi - 1/2 log det P
    features = model.features(model.prepare_input(split.images[:40])).detach().double()
    logits = model.layers.fc3(features.float()).detach().double()
    log_likelihood = -F.cross_entropy(logits, split.targets[:40], reduction="sum")
    fc3 = model.layers.fc3
    mean = torch.cat([fc3.weight, fc3.bias[:, None]], 1).detach().double()
    with torch.no_grad():
        ggn, _ = _gauss_newton(model, split.images[:40], None, torch.device("cpu"))
    dimension = mean.numel()
    for delta, _, evidence in fit.grid:
        prior = torch.distributions.MultivariateNormal(
            torch.zeros(dimension, dtype=torch.float64),
            covariance_matrix=torch.eye(dimension, dtype=torch.float64) / delta,
        ).log_prob(mean.flatten())
        log_determinant = torch.logdet(ggn + delta * torch.eye(dimension, dtype=torch.float64))
        expected = (
            log_likelihood + prior + dimension / 2 * math.log(2 * math.pi) - log_determinant / 2
        )
        assert evidence == pytest.approx(float(expected), rel=1e-6, abs=1e-3)
    best = max(fit.grid, key=lambda row: row[2])[0]
    assert fit.evidence_prior_precision == best
    # a larger prior precision pulls the posterior in
    variances = {}
    for precision in (1.0, 100.0):
        tiny_fit(tiny_data_root, model, (precision,))
        variances[precision] = model.posterior_scale.square().sum()
    assert variances[100.0] < variances[1.0] / 10


def test_a_fit_that_fails_leaves_the_posterior_as_it_was(tiny_data_root: Path) -> None:
    model = fitted_model(precision=7.5)
    scale = model.posterior_scale.clone()
    split = zoo.data.load_dataset("mnist", "train", tiny_data_root)
    bad_calls = {
        "labels must be": (split.images[:40], split.images[40:], split.targets[41:]),
        "int64 class indices": (split.images[:40], split.images[40:], split.targets[40:] + 10),
        "uint8": (split.images[:40].float(), split.images[40:], split.targets[40:]),
    }
    for message, arguments in bad_calls.items():
        with pytest.raises(zoo.InvalidInputError, match=message):
            fit_posterior(model, *arguments, device="cpu")
    for grid in ((), (0.0,), (math.inf,), (-1.0,)):
        with pytest.raises(zoo.InvalidInputError, match="prior_precisions"):
            fit_posterior(
                model,
                split.images[:40],
                split.images[40:],
                split.targets[40:],
                prior_precisions=grid,
            )
    with pytest.raises(KeyboardInterrupt), pytest.MonkeyPatch.context() as patch:
        patch.setattr("zoo.laplace._held_out_nll", _interrupt)
        fit_posterior(model, split.images[:40], split.images[40:], split.targets[40:], device="cpu")
    assert torch.equal(model.posterior_scale, scale) and model.fitted
    assert float(model.prior_precision) == 7.5


def _interrupt(*args: object) -> float:
    raise KeyboardInterrupt


def test_a_posterior_that_cannot_be_factorised_is_never_chosen(tiny_data_root: Path) -> None:
    model = zoo.create_model("laplace_lenet")
    with pytest.MonkeyPatch.context() as patch:
        original = zoo.laplace._posterior
        patch.setattr(
            "zoo.laplace._posterior", lambda ggn, delta: None if delta < 1 else original(ggn, delta)
        )
        fit = tiny_fit(tiny_data_root, model, (0.1, 10.0))
        assert math.isnan(fit.grid[0][1]) and fit.prior_precision == 10.0
        patch.setattr("zoo.laplace._posterior", lambda ggn, delta: None)
        with pytest.raises(zoo.InvalidInputError, match="no prior precision"):
            tiny_fit(tiny_data_root, model, (0.1, 10.0))


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
    # its posterior is fitted with the evaluation's samples: a resume may not change them
    from zoo.training.checkpoint import load_checkpoint

    from .test_training import interrupt_after_epochs

    with pytest.MonkeyPatch.context() as patch:
        interrupt_after_epochs(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            train(parse_recipe(recipe("laplace_lenet")), tmp_path / "k", data_dir=tiny_data_root)
    assert load_checkpoint(tmp_path / "k" / "training_state.safetensors").epoch == 1
    other = parse_recipe(recipe("laplace_lenet").replace("samples = 4", "samples = 8"))
    with pytest.raises(zoo.TrainingStateError, match=r"differs in evaluation\.samples"):
        train(other, tmp_path / "k", data_dir=tiny_data_root, resume=True)
    without_held_out = recipe("laplace_lenet").replace(
        "validation_size = 10", "validation_size = 0"
    )
    with pytest.raises(zoo.RecipeError, match="prior precision is chosen on them"):
        parse_recipe(without_held_out)
