"""Temperature scaling: what T does to a model, how it is saved, loaded and refused, and how
it is fitted on held-out images."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import zoo
from zoo.cli import main
from zoo.devices import seeded
from zoo.temperature import HELD_OUT_IMAGES, fit_temperature, fit_temperature_to_logits

from .conftest import ARCHITECTURES, write_random_data_root


@pytest.fixture(scope="module")
def held_out_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random images, as many as the held-out set needs."""
    return write_random_data_root(tmp_path_factory.mktemp("held-out"), HELD_OUT_IMAGES, 20, seed=4)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_the_temperature_divides_every_samples_logits(name: str, images: torch.Tensor) -> None:
    model = zoo.create_model(name).eval()
    with seeded(1):
        raw = model(images, 4) if model.stochastic else model(images)
        before = model.predict(images, 4)
    model.temperature = 2.5
    with seeded(1):
        scaled = model(images, 4) if model.stochastic else model(images)
        after = model.predict(images, 4)
    torch.testing.assert_close(scaled, raw / 2.5)
    assert torch.equal(after.sample_probs.argmax(-1), before.sample_probs.argmax(-1))
    assert (after.sample_probs.amax(-1) <= before.sample_probs.amax(-1) + 1e-6).all()


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), 1000.0, 0.001, True, "2"])
def test_a_temperature_outside_its_range_is_refused(value: object) -> None:
    model = zoo.create_model("lenet")
    with pytest.raises(zoo.ModelConfigError, match="temperature must be"):
        model.temperature = value  # type: ignore[assignment]
    assert model.temperature == 1.0


def test_the_temperature_is_saved_and_loaded(tmp_path: Path) -> None:
    model = zoo.create_model("mc_dropout_lenet")
    plain = json.loads((model.save_pretrained(tmp_path / "plain") / "config.json").read_text())
    assert plain["format_version"] == 1 and "temperature" not in plain  # as before
    model.temperature = 1.7
    folder = model.save_pretrained(tmp_path / "calibrated")
    config = json.loads((folder / "config.json").read_text())
    assert config["format_version"] == 2 and config["temperature"] == 1.7
    assert zoo.load(folder).temperature == 1.7
    assert zoo.load(tmp_path / "plain").temperature == 1.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"temperature": "2"}, "'temperature' must be a number from 0.01 to 100, found '2'"),
        ({"temperature": 1e9}, "'temperature' must be a number"),
        ({"temperature": -1}, "'temperature' must be a number"),
        ({"temperature": True}, "'temperature' must be a number"),
        ({"temperature": 2.0, "format_version": 1}, "'temperature' needs 'format_version' 2"),
    ],
)
def test_a_hostile_temperature_in_config_json_is_refused(
    changes: dict[str, object], message: str, tmp_path: Path
) -> None:
    model = zoo.create_model("lenet")
    model.temperature = 2.0
    folder = model.save_pretrained(tmp_path)
    config = json.loads((folder / "config.json").read_text()) | changes
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(zoo.ConfigFileError, match=re.escape(message)):
        zoo.load(folder)


def test_a_nan_temperature_in_config_json_is_refused(tmp_path: Path) -> None:
    model = zoo.create_model("lenet")
    model.temperature = 2.0
    folder = model.save_pretrained(tmp_path)
    text = (folder / "config.json").read_text().replace('"temperature": 2.0', '"temperature": NaN')
    (folder / "config.json").write_text(text)
    with pytest.raises(zoo.ConfigFileError, match="'temperature' must be a number"):
        zoo.load(folder)


@pytest.mark.parametrize("samples", [1, 4])
def test_the_fit_recovers_the_temperature_that_made_the_labels(samples: int) -> None:
    """Labels drawn from softmax(logits / 2.5) are best explained by T = 2.5."""
    generator = torch.Generator().manual_seed(0)
    shared = torch.randn(20_000, 1, 10, generator=generator, dtype=torch.float64) * 6
    logits = shared + 0.3 * torch.randn(20_000, samples, 10, generator=generator).double()
    probs = (logits / 2.5).softmax(-1).mean(1)
    labels = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    assert fit_temperature_to_logits(logits, labels) == pytest.approx(2.5, rel=0.05)


def test_zoo_calibrate_saves_a_model_fitted_on_the_held_out_images(
    held_out_data: Path, tmp_path: Path
) -> None:
    original = zoo.create_model("mc_dropout_lenet")
    original.save_pretrained(tmp_path / "model")
    arguments = ["calibrate", str(tmp_path / "model"), "--out", str(tmp_path / "calibrated")]
    arguments += ["--samples", "2", "--data-dir", str(held_out_data)]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    found = re.search(r"temperature ([\d.]+): held-out NLL ([\d.]+) -> ([\d.]+)", result.stdout)
    assert found and "(5,000 images, 2 samples each)" in result.stdout
    temperature, before, after = map(float, found.groups())
    assert after <= before
    calibrated = zoo.load(tmp_path / "calibrated")
    assert calibrated.temperature == pytest.approx(temperature, rel=1e-3)
    fit = fit_temperature(original, samples=2, data_dir=held_out_data)
    assert fit.temperature == pytest.approx(temperature, rel=1e-3)  # the same seed: the same T
    assert math.isclose(fit.nll_after, after, abs_tol=1e-4)


def test_calibrate_fits_from_raw_logits_and_leaves_the_model_as_it_was(
    held_out_data: Path,
) -> None:
    model = zoo.create_model("lenet").train()
    model.temperature = 3.0
    calibrated = zoo.calibrate(model, data_dir=held_out_data)
    assert model.temperature == 3.0 and model.training  # untouched
    fresh = zoo.create_model("lenet")
    fresh.load_state_dict(model.state_dict())
    assert calibrated.temperature == pytest.approx(
        zoo.calibrate(fresh, data_dir=held_out_data).temperature
    )
    assert calibrated is not model


def test_calibrating_without_enough_held_out_images_is_a_one_line_error(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    arguments = ["calibrate", "lenet.mnist", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, [*arguments, "--data-dir", str(tiny_data_root)])
    assert result.exit_code == 2
    assert "holds 50 images here, fewer than the 5,000 held-out images" in result.stderr
    assert not (tmp_path / "out").exists()


def test_zoo_info_shows_the_temperature(tmp_path: Path) -> None:
    model = zoo.create_model("lenet")
    model.temperature = 1.7
    result = CliRunner().invoke(main, ["info", str(model.save_pretrained(tmp_path))])
    assert result.exit_code == 0
    assert re.search(r"^temperature +1\.7 \(the logits are divided by it", result.stdout, re.M)


def test_an_evaluation_at_another_temperature_is_refused(
    tmp_path: Path, tiny_data_root: Path
) -> None:
    model = zoo.create_model("lenet")
    uncalibrated = zoo.evaluate(model, data_dir=tiny_data_root, ood=None)
    assert uncalibrated.provenance["temperature"] == 1.0
    model.temperature = 2.0
    folder = model.save_pretrained(tmp_path)
    uncalibrated.save_json(folder / "eval.json")  # a stale report beside the calibrated model
    with pytest.raises(zoo.CheckpointError, match="evaluates these weights at temperature 1"):
        zoo.push_to_hub(str(folder), "me/calibrated")  # refused while staging, before upload
    with pytest.raises(zoo.ModelConfigError, match="at temperature 1, not at the model's 2"):
        zoo.push_to_hub(model, "me/calibrated", evaluation=uncalibrated)


def test_a_model_with_infinite_logits_gets_no_temperature(held_out_data: Path) -> None:
    model = zoo.create_model("lenet").train()
    with torch.no_grad():
        model.layers.fc3.weight.fill_(1e38)
    with pytest.raises(zoo.InvalidInputError, match="NaN or infinite logits"):
        fit_temperature(model, data_dir=held_out_data)
    assert model.training and model.temperature == 1.0


def test_the_fit_checks_its_inputs_and_keeps_t_1_when_nothing_does_better() -> None:
    with pytest.raises(zoo.InvalidInputError, match="logits must be"):
        fit_temperature_to_logits(torch.zeros(4, 10), torch.zeros(4, dtype=torch.long))
    with pytest.raises(zoo.InvalidInputError, match="class indices below 10"):
        fit_temperature_to_logits(torch.zeros(4, 1, 10), torch.full((4,), 10))
    uniform = torch.zeros(8, 1, 10, dtype=torch.float64)  # every T gives the same NLL
    assert fit_temperature_to_logits(uniform, torch.arange(8)) == 1.0
