"""`zoo compare` and `zoo.compare`: a column per model, each the figures it gets alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import main
from zoo.report import flat_metrics

MODELS = ["lenet.mnist", "mc_dropout_lenet.mnist"]


def test_each_column_is_what_zoo_evaluate_gives_the_model_alone(tiny_data_root: Path) -> None:
    comparison = zoo.compare(MODELS, samples=3, data_dir=tiny_data_root)
    assert comparison.names == MODELS and comparison.shift is None
    for name, report in zip(MODELS, comparison.reports, strict=True):
        alone = zoo.evaluate(name, samples=3, data_dir=tiny_data_root)
        assert report.to_dict()["metrics"] == alone.to_dict()["metrics"]  # NaN as None
        assert report.provenance["model"] == name
    lines = comparison.format().splitlines()
    assert lines[3].split() == MODELS
    assert lines[4].split() == ["Samples", "1", "3"]
    acc = next(line for line in lines if line.startswith("Acc ")).split()[1:]
    expected = [f"{100 * report['acc']:.2f}%" for report in comparison.reports]
    assert acc == expected
    assert len(lines) == 5 + len(flat_metrics(comparison.reports[0].to_dict()["metrics"]))


def test_a_shift_comparison_measures_each_model_on_the_same_shifted_sets(
    tiny_data_root: Path,
) -> None:
    comparison = zoo.compare(MODELS, shift="rotation", samples=2, data_dir=tiny_data_root)
    for name, report in zip(MODELS, comparison.reports, strict=True):
        alone = zoo.evaluate(name, samples=2, data_dir=tiny_data_root, shift="rotation")
        assert report.steps == alone.steps
    text = comparison.format()
    assert text.count("by rotation") == 8  # a table per figure
    assert "mean over the shifted steps" in text
    ece = text.split("ECE by rotation\n")[1].splitlines()
    assert ece[0].split() == ["degrees", *MODELS]
    assert ece[7].split()[0] == "90"


def test_model_objects_are_labelled_by_architecture(tiny_data_root: Path) -> None:
    first, second = zoo.create_model("lenet"), zoo.create_model("lenet")
    comparison = zoo.compare([first, second], ood=None, data_dir=tiny_data_root)
    assert comparison.names == ["lenet #1", "lenet #2"]


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (["lenet.mnist"], "compare takes 2 to 16 models, got 1"),
        (["lenet.mnist"] * 2, "given twice: lenet.mnist"),
        (["lenet.mnist"] * 17, "compare takes 2 to 16 models, got 17"),
        ("lenet.mnist", "must be a list"),
        (["lenet.mnist", 3], "not int"),
    ],
)
def test_bad_lists_are_refused_before_anything_loads(models: object, message: str) -> None:
    with pytest.raises(zoo.InvalidInputError, match=message):
        zoo.compare(models)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"shift": "zoom"}, "shift must be one of rotation, translation, corruption"),
        ({"shift": ["rotation"]}, "shift must be one of"),
        ({"shift": "rotation", "dataset": "fashion_mnist"}, "shifts are of the MNIST test set"),
        ({"samples": 0}, "samples"),
        ({"device": "tpu"}, "tpu"),
    ],
)
def test_bad_arguments_are_refused_before_any_model_loads(
    arguments: dict, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zoo.loading

    def no_loading(*_: object, **__: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(zoo.loading, "load", no_loading)
    with pytest.raises(zoo.ZooError, match=message):
        zoo.compare(["lenet.mnist", "no-such-model"], **arguments)


def test_a_model_with_values_on_the_meta_device_is_refused(tiny_data_root: Path) -> None:
    laplace = zoo.create_model("laplace_lenet")
    laplace.posterior_scale = laplace.posterior_scale.to("meta")  # a buffer without values
    with pytest.raises(zoo.InvalidInputError, match="meta device"):
        zoo.compare([zoo.create_model("lenet"), laplace], data_dir=tiny_data_root)
    with pytest.raises(zoo.InvalidInputError, match="meta device"):
        zoo.evaluate(laplace, shift="rotation", data_dir=tiny_data_root)
    with pytest.raises(zoo.InvalidInputError, match="at least one report"):
        zoo.Comparison([])


def test_zoo_compare_prints_a_column_per_model_and_writes_json_and_a_plot(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    out, plot = tmp_path / "compare.json", tmp_path / "compare.png"
    arguments = ["compare", *MODELS, "--samples", "2", "--data-dir", str(tiny_data_root)]
    result = CliRunner().invoke(main, [*arguments, "--json", str(out), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[3].split() == MODELS
    written = json.loads(out.read_text())
    assert written["models"] == MODELS and written["shift"] is None
    assert [report["provenance"]["model"] for report in written["reports"]] == MODELS
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    shifted = CliRunner().invoke(
        main, [*arguments, "--shift", "translation", "--plot", str(tmp_path / "shift.png")]
    )
    assert shifted.exit_code == 0, shifted.output
    assert "NLL by translation" in shifted.stdout
    assert (tmp_path / "shift.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["lenet.mnist"], "compare takes 2 to 16 models"),
        (["lenet.mnist", "no-such-model"], "no-such-model"),
        (["lenet.mnist", "lenet.mnist"], "given twice"),
    ],
)
def test_zoo_compare_refuses_with_one_line(arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["compare", *arguments])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
