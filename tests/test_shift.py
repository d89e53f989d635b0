"""Evaluation under shift: the transforms, step 0 as the plain evaluation, the CLI and JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import zoo
from zoo.cli import main
from zoo.corruptions import SEVERITIES
from zoo.shift import SHIFTS, STEP_METRICS, rotate, translate


def digits() -> torch.Tensor:
    """Asymmetric blobs, so that a wrong direction or offset shows."""
    images = torch.zeros(4, 28, 28, dtype=torch.uint8)
    images[:, 5:12, 8:20] = 200
    images[:, 12:22, 8:11] = 120
    images[1:, 3, 3] = 255
    return images


def test_no_shift_leaves_the_images_as_they_are() -> None:
    images = digits()
    assert torch.equal(rotate(images, 0), images)
    assert torch.equal(translate(images, 0), images)
    assert torch.equal(translate(images, 28), images)  # once round the width
    assert torch.equal(rotate(images, 360), images)
    for degrees in (math.nan, math.inf, "90"):
        with pytest.raises(zoo.InvalidInputError, match="finite number of degrees"):
            rotate(images, degrees)  # type: ignore[arg-type]


def test_translation_wraps_around_along_the_width() -> None:
    images = digits()
    moved = translate(images, 2)
    assert torch.equal(moved[..., 2:], images[..., :-2])
    assert torch.equal(moved[..., :2], images[..., -2:])
    assert not torch.equal(moved, images)


def test_a_quarter_turn_is_rot90_counter_clockwise() -> None:
    images = digits()
    turned = rotate(images, 90)
    assert turned.dtype == torch.uint8 and turned.shape == images.shape
    expected = torch.rot90(images, k=1, dims=(-2, -1))
    # pixel centres land on pixel centres: equal but for rounding at the border
    assert torch.equal(turned[:, 1:-1, 1:-1], expected[:, 1:-1, 1:-1])
    assert not torch.equal(turned, torch.rot90(images, k=-1, dims=(-2, -1)))


def test_a_rotation_keeps_the_ink_inside_and_fills_with_black() -> None:
    images = digits()
    turned = rotate(images, 45)
    assert turned.shape == images.shape and turned.dtype == torch.uint8
    corners = turned[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 0).all()
    ink = images.float().sum((1, 2))
    assert ((turned.float().sum((1, 2)) / ink - 1).abs() < 0.05).all()


@pytest.mark.parametrize("kind", ["rotation", "translation", "corruption"])
def test_step_zero_repeats_the_plain_evaluation(kind: str, tiny_data_root: Path) -> None:
    model = zoo.create_model("mc_dropout_lenet")
    report = zoo.evaluate(model, samples=4, data_dir=tiny_data_root, shift=kind)
    plain = zoo.evaluate(model, samples=4, ood=None, data_dir=tiny_data_root)
    figures = {key: value for group in plain.metrics.values() for key, value in group.items()}
    first = report.steps[0]
    assert first["step"] == (0 if kind != "corruption" else "identity")
    for key in ("acc", "nll", "brier", "ece", "entropy", "mi"):
        assert first[key] == figures[key], key
    assert first["auroc"] == 0.5  # the unshifted images against themselves
    steps = [step["step"] for step in report.steps]
    assert steps == list(SHIFTS[kind].steps)
    assert all(list(step) == ["step", *STEP_METRICS] for step in report.steps)
    assert any(step["acc"] != first["acc"] for step in report.steps[1:])
    summary = report.summary()
    shifted = report.steps[1:]
    assert summary["ece"] == pytest.approx(sum(step["ece"] for step in shifted) / len(shifted))


def test_zoo_eval_shift_prints_a_row_per_step_and_writes_json(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rotation.json"
    arguments = ["eval", "lenet.mnist", "--shift", "rotation", "--samples", "2"]
    arguments += ["--data-dir", str(tiny_data_root), "--json", str(out)]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["degrees", "Acc", "NLL"]
    assert [line.split()[0] for line in lines[1:14]] == [str(step) for step in range(0, 181, 15)]
    assert lines[-1].startswith("mean over the shifted steps")
    assert not (tmp_path / "rotation.png").exists()
    plotted = CliRunner().invoke(main, [*arguments, "--plot", str(tmp_path / "rotation.png")])
    assert plotted.exit_code == 0, plotted.output
    assert (tmp_path / "rotation.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    written = json.loads(out.read_text())
    assert written["kind"] == "rotation" and len(written["steps"]) == 13
    assert written["provenance"]["model"] == "lenet.mnist"
    refused = CliRunner().invoke(main, ["eval", "lenet.mnist", "--shift", "zoom"])
    assert refused.exit_code == 2 and "zoom" in refused.output


def test_an_unknown_shift_is_refused_before_anything_loads() -> None:
    with pytest.raises(zoo.InvalidInputError, match="one of rotation, translation, corruption"):
        zoo.evaluate("no-such-model", shift="zoom")


def test_zoo_eval_shift_corruption_names_each_corruption_and_its_severity(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "corruption.json"
    arguments = ["eval", "mc_dropout_lenet.mnist", "--shift", "corruption", "--samples", "2"]
    arguments += ["--data-dir", str(tiny_data_root), "--json", str(out)]
    arguments += ["--plot", str(tmp_path / "corruption.png")]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["corruption", "Acc"]
    assert lines[1].split()[0] == "identity" and lines[2].split()[:2] == ["shot", "noise"]
    assert len(lines) == 1 + 16 + 1
    written = json.loads(out.read_text())
    assert [step["step"] for step in written["steps"]] == list(SHIFTS["corruption"].steps)
    assert written["provenance"]["severities"] == SEVERITIES
    assert "MNIST-C" in written["provenance"]["shift"]
    assert (tmp_path / "corruption.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    again = zoo.evaluate(
        "mc_dropout_lenet.mnist", samples=2, data_dir=tiny_data_root, shift="corruption"
    )
    assert again.steps == written["steps"]  # the same seed, the same corrupted images
    other = zoo.evaluate(
        "mc_dropout_lenet.mnist", samples=2, data_dir=tiny_data_root, shift="corruption", seed=1
    )
    assert other.steps != again.steps
