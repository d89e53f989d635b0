"""`zoo.evaluate` and its report: wiring, reproducibility, provenance and bad arguments."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import zoo
from zoo.data import load_dataset
from zoo.errors import DatasetNotFoundError, DeviceError, InvalidInputError, UnknownModelError

GROUPS = {
    "classification": ["acc", "nll", "brier", "entropy", "mi"],
    "calibration": ["ece", "aece", "mce"],
    "selective": ["aurc", "augrc", "cov@5risk", "risk@80cov"],
    "ood": ["auroc", "aupr", "fpr95"],
}


def test_every_metric_group_is_reported(tiny_data_root: Path) -> None:
    report = zoo.evaluate(zoo.create_model("mc_dropout_lenet"), samples=3, data_dir=tiny_data_root)
    assert {group: list(values) for group, values in report.metrics.items()} == GROUPS
    assert 0 <= report["acc"] <= 1 and report["nll"] > 0
    assert report.outcomes.confidence.shape == (50,)
    assert report.outcomes.ood_scores.shape == (30,)


def test_batched_metrics_equal_a_direct_computation(tiny_data_root: Path) -> None:
    """Batches of 7 (the last one short) give what one pass over all 50 images gives."""
    model = zoo.create_model("lenet")
    report = zoo.evaluate(model, batch_size=7, data_dir=tiny_data_root, ood=None)
    mnist = load_dataset("mnist", "test", tiny_data_root)
    prediction = model.predict(mnist.images)
    correct = prediction.probs.argmax(-1) == mnist.targets
    nll = -prediction.log_probs.double().gather(1, mnist.targets[:, None]).mean()
    assert report["acc"] == correct.double().mean().item()
    assert report["nll"] == pytest.approx(nll.item(), rel=1e-6)
    assert report["mi"] == 0.0
    assert "ood" not in report.metrics and report.provenance["ood_dataset"] is None


def test_the_same_seed_gives_identical_numbers_and_another_seed_does_not(
    tiny_data_root: Path,
) -> None:
    model = zoo.create_model("bayesian_lenet")
    first = zoo.evaluate(model, samples=4, seed=3, data_dir=tiny_data_root)
    second = zoo.evaluate(model, samples=4, seed=3, data_dir=tiny_data_root)
    other = zoo.evaluate(model, samples=4, seed=4, data_dir=tiny_data_root)
    assert first.to_dict()["metrics"] == second.to_dict()["metrics"]  # NaN != NaN
    assert first.metrics["classification"]["nll"] != other.metrics["classification"]["nll"]


def test_the_callers_random_state_mode_and_device_are_left_alone(tiny_data_root: Path) -> None:
    model = zoo.create_model("mc_dropout_lenet").train()
    torch.manual_seed(11)
    expected_next_draw = torch.rand(1)
    torch.manual_seed(11)
    zoo.evaluate(model, samples=2, data_dir=tiny_data_root, device="cpu")
    assert torch.equal(torch.rand(1), expected_next_draw)
    assert model.training


def test_provenance_identifies_model_data_and_software(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    folder = zoo.create_model("mc_dropout_lenet").save_pretrained(tmp_path / "model")
    report = zoo.evaluate(str(folder), samples=2, seed=5, data_dir=tiny_data_root)
    provenance = report.provenance
    pinned = json.loads((folder / "config.json").read_text())["weights_sha256"]
    assert provenance["model"] == str(folder)
    assert provenance["architecture"] == "mc_dropout_lenet"
    assert provenance["weights_sha256"] == pinned
    assert (provenance["samples"], provenance["seed"]) == (2, 5)
    assert provenance["dataset"]["name"] == "mnist" and provenance["dataset"]["size"] == 50
    assert set(provenance["dataset"]["file_md5s"]) == {
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    }
    assert provenance["ood_dataset"]["name"] == "fashion_mnist"
    assert provenance["ood_score"] == "entropy"
    assert provenance["versions"]["torch"] == torch.__version__
    assert provenance["versions"]["zoo"] == zoo.__version__
    assert provenance["device"].startswith("cpu") and provenance["wall_time_s"] > 0


def test_deterministic_models_report_one_sample(tiny_data_root: Path) -> None:
    report = zoo.evaluate(zoo.create_model("lenet"), samples=16, data_dir=tiny_data_root)
    assert report.provenance["samples"] == 1


def test_the_ood_score_choice_changes_the_ood_metrics(tiny_data_root: Path) -> None:
    model = zoo.create_model("mc_dropout_lenet")
    scores = {}
    for score in ("entropy", "msp", "mi"):
        report = zoo.evaluate(model, samples=4, ood_score=score, data_dir=tiny_data_root)
        assert report.provenance["ood_score"] == score
        scores[score] = report["auroc"]
    assert len(set(scores.values())) == 3
    assert (
        report.metrics["classification"]
        == zoo.evaluate(model, samples=4, ood_score="entropy", data_dir=tiny_data_root).metrics[
            "classification"
        ]
    )


def test_the_report_is_json_with_null_for_undefined_values(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    report = zoo.evaluate(zoo.create_model("lenet"), data_dir=tiny_data_root)
    report.metrics["selective"]["cov@5risk"] = math.nan  # an untrained model reaches no 5% risk
    path = tmp_path / "report.json"
    report.save_json(path)
    written = json.loads(path.read_text())
    assert written["metrics"]["selective"]["cov@5risk"] is None
    assert written["metrics"]["classification"]["acc"] == report["acc"]
    assert written["provenance"] == report.provenance
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left


def test_the_printed_report_groups_metrics_with_percentages(tiny_data_root: Path) -> None:
    report = zoo.evaluate(zoo.create_model("lenet"), data_dir=tiny_data_root)
    text = report.format()
    titles = ["Classification", "Calibration", "Selective classification", "OOD detection"]
    positions = [text.index(title) for title in titles]
    assert positions == sorted(positions)
    acc_line = next(line for line in text.splitlines() if line.startswith("Acc"))
    assert acc_line.endswith(f"{100 * report['acc']:.2f}%")
    nll_line = next(line for line in text.splitlines() if line.startswith("NLL"))
    assert nll_line.endswith(f"{report['nll']:.4f}")


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"batch_size": 0}, InvalidInputError),
        ({"samples": 0}, InvalidInputError),
        ({"ood_score": "energy"}, InvalidInputError),
        ({"device": "tpu"}, DeviceError),
        ({"dataset": "cifar10"}, InvalidInputError),
        ({"ood": "cifar10"}, InvalidInputError),
        ({"seed": -1}, InvalidInputError),
        ({"seed": 2**64}, InvalidInputError),
    ],
)
def test_bad_arguments_fail_before_any_work(arguments: dict, error: type, tmp_path: Path) -> None:
    with pytest.raises(error):
        zoo.evaluate(zoo.create_model("lenet"), data_dir=tmp_path / "empty", **arguments)
    assert not (tmp_path / "empty").exists()


def test_something_other_than_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="must be a zoo model"):
        zoo.evaluate(torch.nn.Linear(2, 2), data_dir=tmp_path)


def test_a_model_with_non_finite_outputs_is_refused(tiny_data_root: Path) -> None:
    model = zoo.create_model("lenet")
    with torch.no_grad():
        next(model.parameters()).fill_(math.nan)
    with pytest.raises(InvalidInputError, match="NaN or infinite outputs"):
        zoo.evaluate(model, data_dir=tiny_data_root)


def test_each_submodule_gets_its_own_mode_back(tiny_data_root: Path) -> None:
    model = zoo.create_model("mc_dropout_lenet").eval()
    first_child = next(model.children()).train()
    zoo.evaluate(model, samples=2, data_dir=tiny_data_root, ood=None)
    assert first_child.training and not model.training


def test_unavailable_devices_are_refused() -> None:
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, if any
    with pytest.raises(DeviceError, match="not available"):
        zoo.evaluate(zoo.create_model("lenet"), device=missing)


def test_unknown_models_and_missing_data_are_reported(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="is not a registered model, an existing folder"):
        zoo.evaluate("no_such_model", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="--data-dir"):
        zoo.evaluate(zoo.create_model("lenet"), data_dir=tmp_path)


def test_the_official_test_sets_are_evaluated_whole(data_root: Path) -> None:
    report = zoo.evaluate(zoo.create_model("lenet"), data_dir=data_root)
    assert report.provenance["dataset"]["size"] == 10_000
    assert report.provenance["ood_dataset"]["size"] == 10_000
    assert report.outcomes.confidence.shape == (10_000,)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"dataset": ["mnist"]}, "unknown dataset"),
        ({"data_dir": 3}, "data_dir must be a folder's path"),
    ],
)
def test_arguments_of_the_wrong_type_say_what_is_expected(
    arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        zoo.evaluate(zoo.create_model("lenet"), **arguments)


def test_a_model_without_values_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="meta device"):
        zoo.evaluate(zoo.create_model("lenet").to("meta"), data_dir=tmp_path / "none")
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("path", ["a\0b.json", 3])
def test_a_report_written_to_no_path_is_an_output_error(path: object, tiny_data_root: Path) -> None:
    report = zoo.evaluate(zoo.create_model("lenet"), data_dir=tiny_data_root, ood=None)
    with pytest.raises(zoo.OutputFileError, match="not the path of a file"):
        report.save_json(path)  # type: ignore[arg-type]
