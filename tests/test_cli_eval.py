"""`zoo eval` and `zoo info`, through Click's runner and once as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import main


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "mc-dropout"
    return zoo.create_model("mc_dropout_lenet").save_pretrained(folder)


def run(*arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(argument) for argument in arguments])
    # Anything but a clean exit means an exception escaped: a traceback for a real user.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_eval_prints_grouped_tables_and_writes_json(
    model_folder: Path, tiny_data_root: Path, tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    code, out, err = run(
        "eval", model_folder, "--data-dir", tiny_data_root, "--samples", "3", "--seed", "2",
        "--json", report_path,
    )  # fmt: skip
    assert code == 0, err
    for title in ("Classification", "Calibration", "Selective classification", "OOD detection"):
        assert title in out
    written = json.loads(report_path.read_text())
    expected = zoo.evaluate(str(model_folder), samples=3, seed=2, data_dir=tiny_data_root)
    assert written["metrics"] == expected.to_dict()["metrics"]
    assert written["provenance"]["samples"] == 3 and written["provenance"]["seed"] == 2
    assert "mnist test" in err  # the progress bar goes to stderr


def test_eval_options_reach_the_evaluation(model_folder: Path, tiny_data_root: Path) -> None:
    code, out, err = run(
        "eval", model_folder, "--data-dir", tiny_data_root, "--ood", "none", "--batch-size", "8",
        "--device", "cpu", "--samples", "2",
    )  # fmt: skip
    assert code == 0, err
    assert "OOD detection" not in out and "Classification" in out
    code, out, _ = run("eval", model_folder, "--data-dir", tiny_data_root, "--ood-score", "mi")
    assert code == 0 and "scored by mi" in out


def test_eval_writes_a_png_plot(model_folder: Path, tiny_data_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "eval.png"
    code, _, err = run("eval", model_folder, "--data-dir", tiny_data_root, "--plot", plot)
    assert code == 0, err
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [path.name for path in tmp_path.iterdir()] == ["eval.png"]


def test_eval_plot_without_matplotlib_says_how_to_install_it(
    model_folder: Path, tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    code, _, err = run(
        "eval", model_folder, "--data-dir", tiny_data_root, "--plot", tmp_path / "p.png"
    )
    assert code == 2
    assert "pip install 'uncertainty-zoo[plot]'" in err
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["eval", "no_such_model"], "is not a registered model, an existing folder or a Hub id"),
        (["eval", "lenet.cifar10"], "lenet has no weights 'cifar10'; available: 'mnist'"),
        (["eval", "MODEL", "--samples", "0"], "Invalid value for '--samples'"),
        (["eval", "MODEL", "--device", "tpu"], "Invalid value for '--device'"),
        (["eval", "MODEL", "--ood", "cifar10"], "Invalid value for '--ood'"),
        (["eval", "MODEL", "--ood-score", "energy"], "Invalid value for '--ood-score'"),
        (["eval", "MODEL", "--json", "/no/such/folder/r.json"], "folder /no/such/folder does not"),
        (["eval", "MODEL", "--json", "same.png", "--plot", "same.png"], "must name different"),
        (["eval", "MODEL", "--seed", "-1"], "Invalid value for '--seed'"),
        (["eval", "MODEL", "--seed", str(2**64)], "Invalid value for '--seed'"),
        (["info", "no_such_model"], "is not a registered model, an existing folder or a Hub id"),
    ],
)
def test_bad_input_is_a_one_line_error_with_exit_code_2(
    arguments: list[str], message: str, model_folder: Path
) -> None:
    arguments = [str(model_folder) if argument == "MODEL" else argument for argument in arguments]
    code, _, err = run(*arguments)
    assert code == 2
    assert message in err


def test_a_report_that_cannot_be_written_is_a_one_line_error(
    model_folder: Path, tiny_data_root: Path, tmp_path: Path
) -> None:
    too_long = tmp_path / ("r" * 300 + ".json")  # longer than any file name may be
    code, _, err = run("eval", model_folder, "--data-dir", tiny_data_root, "--json", too_long)
    assert code == 2
    assert f"cannot write {too_long}" in err
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_eval_without_data_names_the_option(model_folder: Path, tmp_path: Path) -> None:
    code, _, err = run("eval", model_folder, "--data-dir", tmp_path)
    assert code == 2
    assert "--data-dir" in err and "t10k-images-idx3-ubyte.gz" in err


def test_info_describes_a_registered_model() -> None:
    code, out, _ = run("info", "bayesian_lenet")
    assert code == 0
    fields = dict(line.split(maxsplit=1) for line in out.splitlines())
    assert fields["architecture"] == "bayesian_lenet"
    model = zoo.create_model("bayesian_lenet")
    assert fields["parameters"] == f"{sum(p.numel() for p in model.parameters()):,}"
    assert f"prior_pi={model.architecture_kwargs()['prior_pi']!r}" in fields["arguments"]
    assert fields["weights"].endswith("bayesian_lenet.mnist/model.safetensors")  # the default
    assert fields["stochastic"] == "yes"


def test_info_describes_a_model_folder_with_its_weights_hash(model_folder: Path) -> None:
    code, out, _ = run("info", model_folder)
    assert code == 0
    pinned = json.loads((model_folder / "config.json").read_text())["weights_sha256"]
    assert f"sha256 {pinned}" in out
    assert str(model_folder / "model.safetensors") in out


def test_eval_runs_as_a_real_process_on_the_official_data(
    model_folder: Path, data_root: Path, tmp_path: Path
) -> None:
    executable = Path(sys.executable).with_name("zoo")
    report_path = tmp_path / "report.json"
    command = [executable, "eval", model_folder, "--data-dir", data_root, "--samples", "2"]
    result = subprocess.run(
        [*map(str, command), "--json", str(report_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "10,000 images" in result.stdout
    provenance = json.loads(report_path.read_text())["provenance"]
    assert provenance["dataset"]["file_md5s"]["t10k-images-idx3-ubyte"] == (
        "2646ac647ad5339dbf082846283269ea"  # the official file's md5, from the data's README
    )


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a folder no file can be made in")
@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_an_output_that_cannot_be_written_fails_before_the_evaluation(
    option: str, model_folder: Path, tiny_data_root: Path
) -> None:
    pytest.importorskip("matplotlib")
    code, out, err = run("eval", model_folder, "--data-dir", tiny_data_root, option, "/proc/r")
    assert code == 2 and "cannot write /proc/r" in err
    assert out == "" and "mnist test" not in err  # no report printed, no progress bar shown


def test_eval_refuses_more_samples_than_the_bound(model_folder: Path) -> None:
    code, _, err = run("eval", model_folder, "--samples", "100000")
    assert code == 2 and "100000 is not in the range 1<=x<=1024" in err
    with pytest.raises(zoo.InvalidInputError, match="batch_size x samples is 2,000 x 1,024"):
        zoo.evaluate(str(model_folder), samples=1024, batch_size=2000)


def test_a_report_with_a_metric_the_zoo_does_not_know_is_refused(
    model_folder: Path, tmp_path: Path
) -> None:
    folder = zoo.load(model_folder).save_pretrained(tmp_path / "run")
    pinned = json.loads((folder / "config.json").read_text())["weights_sha256"]
    report = {"metrics": {"classification": {"\x1b[2J": 1.0}}, "provenance": {}}
    report["provenance"]["weights_sha256"] = pinned
    (folder / "eval.json").write_text(json.dumps(report))
    with pytest.raises(zoo.CheckpointError, match=r"unknown metric 'classification\.\\x1b"):
        zoo.EvaluationReport.read_json(folder / "eval.json", pinned)


@pytest.mark.parametrize("kind", ["fifo", "symlink", "symlink loop"])
def test_an_output_path_holding_anything_but_a_file_is_never_replaced(
    kind: str, model_folder: Path, tmp_path: Path
) -> None:
    target, victim = tmp_path / "report.json", tmp_path / "victim.txt"
    victim.write_text("keep me")
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to(target if kind == "symlink loop" else victim)
    code, out, err = run("eval", model_folder, "--json", target)
    assert code == 2 and f"cannot write {target}: it is " in err and out == ""
    assert not target.is_file() or target.is_symlink()
    assert victim.read_text() == "keep me"
