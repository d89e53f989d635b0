"""Behaviour every architecture shares: output shapes, `predict`, inputs and arguments."""

from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.models.base import MNIST_MEAN, MNIST_STD

from .conftest import ARCHITECTURES, STOCHASTIC


def build(name: str, **kwargs: object) -> zoo.ZooModel:
    return zoo.create_model(name, **kwargs).eval()


def test_deterministic_forward_returns_batch_by_classes(images: torch.Tensor) -> None:
    assert build("lenet")(images).shape == (6, 10)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_forward_returns_batch_by_samples_by_classes(
    name: str, images: torch.Tensor
) -> None:
    model = build(name)
    assert model(images).shape == (6, 16, 10)
    assert model(images, samples=3).shape == (6, 3, 10)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_num_classes_sets_the_output_width(name: str, images: torch.Tensor) -> None:
    prediction = build(name, num_classes=3).predict(images, samples=2)
    assert prediction.probs.shape == (6, 3)


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("samples", [1, 5])
def test_predict_invariants(name: str, samples: int, images: torch.Tensor) -> None:
    model = build(name)
    with torch.no_grad():  # make the logits spread out, so the checks are not trivial
        for parameter in model.parameters():
            parameter.mul_(3.0)
    prediction = model.predict(images, samples=samples)
    expected_samples = model.samples_per_image(samples)  # S = M for an ensemble
    assert prediction.sample_probs.shape == (6, expected_samples, 10)
    assert prediction.probs.shape == prediction.log_probs.shape == (6, 10)
    for field in (prediction.entropy, prediction.aleatoric, prediction.mutual_information):
        assert field.shape == (6,)
    assert torch.allclose(prediction.sample_probs.sum(-1), torch.ones(6, expected_samples))
    assert torch.allclose(prediction.probs.sum(-1), torch.ones(6))
    assert torch.allclose(prediction.probs, prediction.sample_probs.mean(1), atol=1e-6)
    assert torch.allclose(prediction.log_probs.exp(), prediction.probs, atol=1e-6)
    entropy = torch.special.entr(prediction.probs.double()).sum(-1).float()
    assert torch.allclose(prediction.entropy, entropy, atol=1e-5)
    aleatoric = torch.special.entr(prediction.sample_probs.double()).sum(-1).mean(1).float()
    assert torch.allclose(prediction.aleatoric, aleatoric, atol=1e-5)
    assert (entropy - aleatoric >= -1e-6).all()  # Jensen: no clamping needed to hold
    mutual_information = prediction.mutual_information
    assert (mutual_information >= 0).all()
    assert (mutual_information <= prediction.entropy).all()
    assert (prediction.entropy <= math.log(10) + 1e-6).all()
    assert torch.allclose(prediction.entropy - prediction.aleatoric, mutual_information, atol=1e-6)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_models_have_positive_mutual_information(
    name: str, images: torch.Tensor
) -> None:
    assert (build(name).predict(images, samples=8).mutual_information > 0).all()


def test_deterministic_model_has_one_sample_and_zero_mutual_information(
    images: torch.Tensor,
) -> None:
    prediction = build("lenet").predict(images, samples=16)
    assert prediction.sample_probs.shape[1] == 1
    assert torch.equal(prediction.mutual_information, torch.zeros(6))
    assert torch.equal(prediction.entropy, prediction.aleatoric)


def test_prediction_is_frozen(images: torch.Tensor) -> None:
    prediction = build("lenet").predict(images)
    with pytest.raises(AttributeError):
        prediction.probs = prediction.probs * 0  # type: ignore[misc]


def test_uint8_input_is_normalised_with_the_stored_mean_and_std(images: torch.Tensor) -> None:
    model = build("lenet", mean=0.5, std=0.25)
    normalised = (images.float() / 255 - 0.5) / 0.25
    assert torch.allclose(model(images), model(normalised), atol=1e-5)
    assert (model.mean, model.std) == (0.5, 0.25)
    assert (build("lenet").mean, build("lenet").std) == (MNIST_MEAN, MNIST_STD)


def test_all_accepted_shapes_give_the_same_logits(images: torch.Tensor) -> None:
    model = build("lenet")
    reference = model(images)
    assert torch.equal(model(images.unsqueeze(1)), reference)
    assert torch.allclose(model(images[0]), reference[:1], atol=1e-6)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_predict_accepts_a_single_image(name: str, images: torch.Tensor) -> None:
    assert build(name).predict(images[0], samples=2).probs.shape == (1, 10)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_empty_batch_gives_empty_outputs(name: str) -> None:
    model = build(name)
    prediction = model.predict(torch.zeros(0, 28, 28, dtype=torch.uint8), samples=4)
    assert prediction.sample_probs.shape == (0, model.samples_per_image(4), 10)
    assert prediction.probs.shape == (0, 10)
    assert prediction.entropy.shape == prediction.mutual_information.shape == (0,)
    empty_floats = torch.zeros(0, 1, 28, 28)
    assert model(empty_floats).shape[0] == 0


@pytest.mark.parametrize(
    ("bad_input", "expected_message"),
    [
        (torch.zeros(28, dtype=torch.uint8), "shape"),
        (torch.zeros(2, 1, 1, 28, 28), "shape"),
        (torch.zeros(2, 3, 28, 28), "1 channel"),
        (torch.zeros(2, 32, 32, dtype=torch.uint8), "28x28"),
        (torch.zeros(2, 1, 28, 27), "28x28"),
        (torch.full((2, 28, 28), float("nan")), "NaN"),
        (torch.full((2, 28, 28), float("inf")), "NaN or infinity"),
        (torch.zeros(2, 28, 28, dtype=torch.int64), "uint8"),
        (torch.zeros(2, 28, 28, dtype=torch.bool), "uint8"),
        (torch.full((2, 28, 28), 1e300, dtype=torch.float64), "NaN or infinity"),
        ([[0] * 28] * 28, "torch.Tensor"),
    ],
)
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_bad_input_raises_a_value_error_saying_what_is_expected(
    name: str, bad_input: object, expected_message: str
) -> None:
    model = build(name)
    with pytest.raises(ValueError, match=expected_message) as caught:
        model.predict(bad_input)  # type: ignore[arg-type]
    assert isinstance(caught.value, zoo.InvalidInputError)


@pytest.mark.parametrize("samples", [0, -1, 2.5, True, "16"])
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_bad_sample_count_is_rejected(name: str, samples: object, images: torch.Tensor) -> None:
    with pytest.raises(zoo.InvalidInputError, match="samples must be a positive integer"):
        build(name).predict(images, samples=samples)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "kwargs", "expected_message"),
    [
        ("lenet", {"num_classes": 1}, "num_classes"),
        ("lenet", {"num_classes": 2.0}, "num_classes"),
        ("lenet", {"class_labels": ["a", "b"]}, "class_labels has 2 entries"),
        ("lenet", {"class_labels": "0123456789"}, "list of strings"),
        ("lenet", {"class_labels": 5}, "list of strings"),
        ("lenet", {"std": 0.0}, "std"),
        ("lenet", {"mean": float("nan")}, "mean"),
        ("lenet", {"fc_dropout": 1.0}, "fc_dropout"),
        ("mc_dropout_lenet", {"conv_dropout": -0.1}, "conv_dropout"),
        ("mc_dropout_lenet", {"fc_dropout": "0.5"}, "fc_dropout"),
        ("mc_dropout_lenet", {"conv_dropout": 0.0, "fc_dropout": 0.0}, "dropout rate above 0"),
        ("bayesian_lenet", {"prior_pi": 0.0}, "pi"),
        ("bayesian_lenet", {"prior_sigma2": -1.0}, "sigma2"),
        ("bayesian_lenet", {"posterior_rho_init": float("inf")}, "posterior_rho_init"),
    ],
)
def test_invalid_constructor_arguments_are_refused(
    name: str, kwargs: dict[str, object], expected_message: str
) -> None:
    with pytest.raises(zoo.ModelConfigError, match=expected_message):
        zoo.create_model(name, **kwargs)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_gradients_reach_every_parameter(name: str, images: torch.Tensor) -> None:
    model = zoo.create_model(name)
    logits = model(images)
    targets = torch.arange(6) % 10
    if logits.dim() == 3:
        logits = logits.mean(1)
    torch.nn.functional.cross_entropy(logits, targets).backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, parameter_name


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_float64_models_take_uint8_and_float32_input(name: str, images: torch.Tensor) -> None:
    model = build(name).double()
    assert model(images).dtype == torch.float64
    assert model(images.float()).dtype == torch.float64


@pytest.mark.parametrize("name", STOCHASTIC)
def test_large_batches_draw_fresh_samples_for_every_image(name: str, images: torch.Tensor) -> None:
    model = build(name)
    same_image = images[:1].expand(300, 28, 28)  # more image-sample rows than one chunk holds
    logits = model(same_image, samples=16)
    assert logits.shape == (300, 16, 10)
    rows = logits.reshape(-1, 10)
    assert torch.unique(rows, dim=0).shape[0] > 0.99 * rows.shape[0]


def test_a_large_deterministic_batch_matches_small_ones(images: torch.Tensor) -> None:
    model = build("bayesian_lenet").freeze()
    batch = images.repeat(400, 1, 1)  # 2,400 images
    logits = model(batch)
    assert logits.shape == (2400, 1, 10)
    assert torch.allclose(logits[-6:], model(images), atol=1e-5)
    assert torch.allclose(logits[:6], model(images), atol=1e-5)


def test_numpy_scalars_are_accepted_as_numbers(images: torch.Tensor) -> None:
    numpy = pytest.importorskip("numpy")
    model = build("mc_dropout_lenet", num_classes=numpy.int64(3), fc_dropout=numpy.float32(0.3))
    assert model.predict(images, samples=numpy.int64(4)).sample_probs.shape == (6, 4, 3)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_more_samples_than_the_bound_are_refused_before_any_work(
    name: str, images: torch.Tensor
) -> None:
    from zoo.limits import MAX_SAMPLES

    model = build(name)
    assert model.predict(images[:1], samples=MAX_SAMPLES).sample_probs.shape[1] == MAX_SAMPLES
    for samples in (MAX_SAMPLES + 1, 5000, 10**20):
        with pytest.raises(zoo.InvalidInputError, match=f"samples must be at most {MAX_SAMPLES:,}"):
            model.predict(images[:1], samples=samples)
        with pytest.raises(zoo.InvalidInputError, match="samples must be at most"):
            model(images[:1], samples=samples)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_tensors_without_values_or_dense_storage_are_refused(name: str) -> None:
    model = build(name)
    meta_images = torch.zeros(2, 28, 28, dtype=torch.uint8, device="meta")
    with pytest.raises(zoo.InvalidInputError, match="images are on the meta device"):
        model.predict(meta_images)
    with pytest.raises(zoo.InvalidInputError, match="must be a dense tensor"):
        model.predict(torch.zeros(2, 28, 28).to_sparse())
    with pytest.raises(zoo.InvalidInputError, match="the model is on the meta device"):
        build(name).to("meta").predict(torch.zeros(2, 28, 28, dtype=torch.uint8))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 100_001}, "num_classes must be an integer from 2 to 100,000"),
        ({"std": 1e-300}, "std must be from"),
        ({"std": 1e300}, "std must be from"),
        ({"mean": -1e300}, "mean must be within"),
    ],
)
def test_sizes_and_normalisation_out_of_bounds_are_refused(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(zoo.ModelConfigError, match=message):
        zoo.create_model("lenet", **kwargs)


def test_a_prediction_is_never_built_from_non_finite_logits() -> None:
    logits = torch.zeros(2, 3, 10)
    logits[1, 2, 4] = math.nan
    with pytest.raises(zoo.InvalidInputError, match="NaN or infinite outputs"):
        zoo.Prediction.from_logits(logits)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"conv_dropout": 10**400}, "conv_dropout must be a finite number"),
        ({"posterior_rho_init": 1e300}, "posterior_rho_init must be within"),
    ],
)
def test_numbers_too_large_for_a_float_are_refused(kwargs: dict[str, object], message: str) -> None:
    name = "bayesian_lenet" if "posterior_rho_init" in kwargs else "mc_dropout_lenet"
    with pytest.raises(zoo.ModelConfigError, match=message):
        zoo.create_model(name, **kwargs)


def test_nested_tensors_are_refused(images: torch.Tensor) -> None:
    parts = [images[0].float(), images[1, :20].float()]
    nested = torch.nested.nested_tensor(parts, layout=torch.jagged)
    with pytest.raises(zoo.InvalidInputError, match="must be a dense tensor, not nested"):
        build("lenet").predict(nested)


def test_finite_logits_too_far_apart_for_probabilities_are_refused() -> None:
    logits = torch.zeros(1, 1, 10)
    logits[0, 0, 0], logits[0, 0, 1] = 3e38, -3e38  # finite, but 6e38 apart
    with pytest.raises(zoo.InvalidInputError, match="too large to turn into probabilities"):
        zoo.Prediction.from_logits(logits)
