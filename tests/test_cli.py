"""The `zoo` command, through Click's runner and once as a real process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
import zoo.weights
from zoo.cli import main

from .conftest import ALL_ARCHITECTURES, ARCHITECTURES, CHECKPOINTS


def table_rows(output: str) -> dict[str, list[str]]:
    """The rows of `zoo list`'s table, by model name, split on runs of two or more spaces."""
    header, *rows = output.splitlines()
    assert header.split() == ["NAME", "PARAMS", "ACC", "NLL", "ECE", "OOD", "AUROC", "SUMMARY"]
    return {row.split()[0]: re.split(r"\s{2,}", row) for row in rows}


def test_list_shows_each_checkpoint_with_its_recorded_metrics() -> None:
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    shipped = {name: row for name, row in rows.items() if "." in name}
    assert list(shipped) == CHECKPOINTS
    assert set(rows) - set(shipped) == set(ALL_ARCHITECTURES) - set(ARCHITECTURES)
    for name, (_, params, *metrics, _) in shipped.items():
        model = zoo.create_model(name.partition(".")[0])
        assert params == f"{sum(p.numel() for p in model.parameters()):,}"
        recorded = zoo.weights.find_weights(name).metrics
        assert metrics[0] == f"{100 * recorded['classification']['acc']:.2f}%"
        assert metrics[3] == f"{100 * recorded['ood']['auroc']:.2f}%"
    assert "Monte-Carlo dropout" in rows["mc_dropout_lenet.mnist"][-1]
    assert "Bayes-by-Backprop" in rows["bayesian_lenet.mnist"][-1]


def test_list_shows_an_architecture_without_weights_with_dashes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    zoo.list_models()
    monkeypatch.setattr(zoo.registry, "_entrypoints", dict(zoo.registry._entrypoints))

    @zoo.register_model
    def wide_lenet(**kwargs: object) -> zoo.ZooModel:
        """A LeNet without weights."""
        return zoo.models.lenet(**kwargs)

    rows = table_rows(CliRunner().invoke(main, ["list", "wide*"]).output)
    assert list(rows) == ["wide_lenet"]
    assert rows["wide_lenet"][2:6] == ["-"] * 4


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("mc_*", ["mc_dropout_lenet.mnist"]),
        ("lenet", ["lenet.mnist", "lenet.mnist_ts"]),
        ("*.mnist", [f"{name}.mnist" for name in sorted(ARCHITECTURES)]),
    ],
)
def test_list_filters_by_pattern(pattern: str, expected: list[str]) -> None:
    result = CliRunner().invoke(main, ["list", pattern])
    assert result.exit_code == 0
    assert list(table_rows(result.output)) == expected


def test_list_with_no_match_fails_and_names_the_known_models() -> None:
    result = CliRunner().invoke(main, ["list", "resnet*"])
    assert result.exit_code == 1
    assert "no model matches 'resnet*'" in result.output
    assert "mc_dropout_lenet" in result.output
    assert "Traceback" not in result.output


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and zoo.__version__ in result.output


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from zoo.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as exit:\n    assert exit.code == 0\n"
        "print('torch' in sys.modules)\n"
    )
    output = run_python(code).stdout
    assert "Commands:" in output and "list" in output
    assert output.strip().endswith("False")


def test_python_dash_m_zoo_is_the_zoo_command() -> None:
    """Launchers that start a module (``torchrun -m zoo train``) need ``python -m zoo``."""
    result = subprocess.run(
        [sys.executable, "-m", "zoo", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: zoo ") and "train" in result.stdout


def test_import_zoo_is_lazy_until_a_model_is_used() -> None:
    output = run_python(
        "import sys, zoo\n"
        "print('torch' in sys.modules)\n"
        "zoo.create_model('lenet')\n"
        "print('torch' in sys.modules)\n"
    )
    assert output.stdout.split() == ["False", "True"]


@pytest.mark.parametrize(
    "arguments", [["list"], ["info", "deep_ensemble_lenet.mnist"], ["info", "laplace_lenet.mnist"]]
)
def test_listing_and_describing_import_no_metrics_and_no_compiler(arguments: list[str]) -> None:
    """torchmetrics (with the torchvision it imports) and torch._dynamo cost seconds to
    import, and a command that only reads the registry and builds skeletons needs neither."""
    code = (
        "import sys\n"
        "from zoo.cli import main\n"
        f"try:\n    main({arguments!r})\nexcept SystemExit as exit:\n    assert exit.code == 0\n"
        "print(sorted(m for m in ('torchmetrics', 'torchvision', 'torch._dynamo') "
        "if m in sys.modules))\n"
    )
    output = run_python(code).stdout
    assert "0.99" in output or "99." in output  # the command ran: accuracies are printed
    assert output.strip().splitlines()[-1] == "[]"


def test_every_public_name_resolves() -> None:
    for name in zoo.__all__:
        assert getattr(zoo, name) is not None, name


def test_zoo_list_runs_as_a_real_process() -> None:
    executable = Path(sys.executable).with_name("zoo")  # the installed console script
    assert executable.exists(), "install the project first: scripts/test does"
    result = subprocess.run(
        [str(executable), "list"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    shipped = [name for name in table_rows(result.stdout) if "." in name]
    assert shipped == CHECKPOINTS
