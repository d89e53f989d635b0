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
from zoo.shift import ROTATION_DEGREES, STEP_METRICS, TRANSLATION_PIXELS, rotate, translate


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


@pytest.mark.parametrize("kind", ["rotation", "translation"])
def test_step_zero_repeats_the_plain_evaluation(kind: str, tiny_data_root: Path) -> None:
    model = zoo.create_model("mc_dropout_lenet")
    report = zoo.evaluate(model, samples=4, data_dir=tiny_data_root, shift=kind)
    plain = zoo.evaluate(model, samples=4, ood=None, data_dir=tiny_data_root)
    figures = {key: value for group in plain.metrics.values() for key, value in group.items()}
    first = report.steps[0]
    assert first["step"] == 0
    for key in ("acc", "nll", "brier", "ece", "entropy", "mi"):
        assert first[key] == figures[key], key
    assert first["auroc"] == 0.5  # the unshifted images against themselves
    steps = [step["step"] for step in report.steps]
    assert steps == list(ROTATION_DEGREES if kind == "rotation" else TRANSLATION_PIXELS)
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
    assert [line.split()[0] for line in lines[1:14]] == [str(step) for step in ROTATION_DEGREES]
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
    with pytest.raises(zoo.InvalidInputError, match="shift must be one of rotation, translation"):
        zoo.evaluate("no-such-model", shift="zoom")
