"""save_pretrained / from_pretrained: exact round trips, strict loads, no pickle, atomic writes."""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch

import zoo
import zoo.info
from zoo.models import DeepEnsembleLeNet, LaplaceLeNet
from zoo.pretrained import CONFIG_NAME, WEIGHTS_NAME

from .conftest import ARCHITECTURES


def saved(name: str, folder: Path, **kwargs: object) -> Path:
    return zoo.create_model(name, **kwargs).save_pretrained(folder)


def edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / CONFIG_NAME).read_text())
    config.update(changes)
    (folder / CONFIG_NAME).write_text(json.dumps(config))


def replace_weights(folder: Path, data: bytes) -> None:
    """Swap in other weight bytes and pin their sha256, so only the content is wrong."""
    (folder / WEIGHTS_NAME).write_bytes(data)
    edit_config(folder, weights_sha256=hashlib.sha256(data).hexdigest())


def edit_tensors(folder: Path, edit: object) -> None:
    tensors = safetensors.torch.load_file(folder / WEIGHTS_NAME)
    edit(tensors)  # type: ignore[operator]
    replace_weights(folder, safetensors.torch.save(tensors))


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_round_trip_gives_identical_outputs_under_a_fixed_seed(
    name: str, images: torch.Tensor, tmp_path: Path
) -> None:
    model = zoo.create_model(name).eval()
    if isinstance(model, LaplaceLeNet):  # with a posterior, which the round trip must keep
        dimension = model.dimension
        model.set_posterior(torch.randn(dimension, dimension) / dimension**0.5, 2.0)
    model.save_pretrained(tmp_path)
    loaded = zoo.from_pretrained(tmp_path)
    assert type(loaded) is type(model)
    assert not loaded.training
    torch.manual_seed(42)
    expected = model.predict(images, samples=8).sample_probs
    torch.manual_seed(42)
    actual = loaded.predict(images, samples=8).sample_probs
    assert torch.equal(actual, expected)
    draws = not isinstance(model, DeepEnsembleLeNet)  # an ensemble's samples are its members
    if model.stochastic and draws:  # loading left the model stochastic
        assert not torch.equal(loaded(images, samples=2), loaded(images, samples=2))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("lenet", {"conv_dropout": 0.1, "fc_dropout": 0.2}),
        ("mc_dropout_lenet", {"conv_dropout": 0.0, "fc_dropout": 0.3}),
        ("bayesian_lenet", {"prior_pi": 0.25, "prior_sigma2": 0.01, "posterior_rho_init": -6}),
    ],
)
def test_round_trip_keeps_every_constructor_argument(
    name: str, kwargs: dict[str, object], tmp_path: Path
) -> None:
    common = {"num_classes": 3, "class_labels": ["cat", "dog", "owl"], "mean": 0.5, "std": 0.2}
    model = zoo.create_model(name, **kwargs, **common)
    loaded = zoo.from_pretrained(model.save_pretrained(tmp_path))
    assert loaded.architecture_kwargs() == model.architecture_kwargs()
    assert loaded.class_labels == ["cat", "dog", "owl"]
    assert (loaded.num_classes, loaded.mean, loaded.std) == (3, 0.5, 0.2)


def test_config_records_what_rebuilds_the_model_and_pins_the_weights(tmp_path: Path) -> None:
    saved("mc_dropout_lenet", tmp_path, fc_dropout=0.4)
    assert sorted(path.name for path in tmp_path.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["architecture"] == "mc_dropout_lenet"
    assert config["kwargs"] == {"conv_dropout": 0.25, "fc_dropout": 0.4}
    assert config["num_classes"] == 10
    assert config["class_labels"] == [str(digit) for digit in range(10)]
    assert config["preprocessing"] == {"mean": 0.1307, "std": 0.3081}
    assert config["zoo_version"] == zoo.__version__
    weights = (tmp_path / WEIGHTS_NAME).read_bytes()
    assert config["weights_sha256"] == hashlib.sha256(weights).hexdigest()


def test_saving_again_overwrites_both_files(images: torch.Tensor, tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    second = zoo.create_model("lenet").eval()
    second.save_pretrained(tmp_path)
    assert torch.equal(zoo.from_pretrained(tmp_path)(images), second(images))


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(zoo.CheckpointError, match="no such folder"):
        zoo.from_pretrained(tmp_path / "nowhere")


def test_missing_config(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    (tmp_path / CONFIG_NAME).unlink()
    with pytest.raises(zoo.ConfigFileError, match=f"{CONFIG_NAME}: missing"):
        zoo.from_pretrained(tmp_path)


@pytest.mark.parametrize("text", ["{not json", "", "\xff\xfe", "[1, 2]"])
def test_config_that_is_not_a_json_object(text: str, tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    (tmp_path / CONFIG_NAME).write_bytes(text.encode("latin-1"))
    with pytest.raises(zoo.ConfigFileError, match=CONFIG_NAME):
        zoo.from_pretrained(tmp_path)


def test_unknown_architecture_names_the_known_ones(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    edit_config(tmp_path, architecture="resnet50")
    with pytest.raises(zoo.ConfigFileError, match=r"resnet50.*known models: bayesian_lenet"):
        zoo.from_pretrained(tmp_path)


def test_unknown_kwargs_are_named(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    edit_config(tmp_path, kwargs={"conv_dropout": 0.0, "fc_dropout": 0.0, "width": 2})
    with pytest.raises(zoo.ConfigFileError, match=r"unknown argument.*width"):
        zoo.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("changes", "expected_message"),
    [
        ({"kwargs": {"conv_dropout": 0.0, "fc_dropout": 0.0}}, "dropout rate above 0"),
        ({"kwargs": {"num_classes": 10}}, "must not repeat num_classes"),
        ({"num_classes": "10"}, "'num_classes' must be a JSON int"),
        ({"architecture": None}, "'architecture' must be a JSON str"),
        ({"preprocessing": {"mean": 0.1}}, "exactly 'mean' and 'std'"),
        ({"preprocessing": {"mean": 0.1, "std": -1}}, "std must be > 0"),
        ({"class_labels": ["a"]}, "class_labels has 1 entries"),
        ({"weights_sha256": "abc"}, "64 lower-case hex digits"),
        ({"format_version": 3}, "newer than this uncertainty-zoo reads"),
        ({"format_version": "1"}, "'format_version' must be 1"),
    ],
)
def test_invalid_config_values_are_named(
    changes: dict[str, object], expected_message: str, tmp_path: Path
) -> None:
    saved("mc_dropout_lenet", tmp_path)
    edit_config(tmp_path, **changes)
    with pytest.raises(zoo.ConfigFileError, match=expected_message) as caught:
        zoo.from_pretrained(tmp_path)
    assert caught.value.path == tmp_path / CONFIG_NAME


def test_missing_field_is_named(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    del config["weights_sha256"]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(zoo.ConfigFileError, match=r"'weights_sha256' must be .* found nothing"):
        zoo.from_pretrained(tmp_path)


def test_missing_weights(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    (tmp_path / WEIGHTS_NAME).unlink()
    with pytest.raises(zoo.WeightsFileError, match=f"{WEIGHTS_NAME}: missing"):
        zoo.from_pretrained(tmp_path)


def test_truncated_weights_fail_the_sha256_check(tmp_path: Path) -> None:
    saved("bayesian_lenet", tmp_path)
    weights = tmp_path / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(zoo.ChecksumMismatchError, match="truncated, corrupted") as caught:
        zoo.from_pretrained(tmp_path)
    assert isinstance(caught.value, zoo.WeightsFileError)
    assert caught.value.path == weights


def test_weights_of_another_model_fail_the_sha256_check(tmp_path: Path) -> None:
    saved("lenet", tmp_path / "a")
    saved("lenet", tmp_path / "b")
    (tmp_path / "a" / WEIGHTS_NAME).write_bytes((tmp_path / "b" / WEIGHTS_NAME).read_bytes())
    with pytest.raises(zoo.ChecksumMismatchError, match="pins"):
        zoo.from_pretrained(tmp_path / "a")


@pytest.mark.parametrize("data", [b"", b"\x00" * 7, b"not a safetensors file at all"])
def test_weights_that_are_not_safetensors(data: bytes, tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    replace_weights(tmp_path, data)
    with pytest.raises(zoo.WeightsFileError, match="not a valid safetensors file"):
        zoo.from_pretrained(tmp_path)


def test_truncated_safetensors_with_a_matching_pin(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    replace_weights(tmp_path, (tmp_path / WEIGHTS_NAME).read_bytes()[:-64])
    with pytest.raises(zoo.WeightsFileError, match="not a valid safetensors file"):
        zoo.from_pretrained(tmp_path)


class _CreatesAFileWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_pickle_named_model_safetensors_is_never_unpickled(writer: str, tmp_path: Path) -> None:
    folder, marker = tmp_path / "model", tmp_path / "unpickled"
    saved("lenet", folder)
    payload = {"layers.conv1.weight": _CreatesAFileWhenUnpickled(marker)}
    if writer == "pickle":
        data = pickle.dumps(payload)
    else:
        torch.save(payload, folder / "scratch.pt")
        data = (folder / "scratch.pt").read_bytes()
        (folder / "scratch.pt").unlink()
    replace_weights(folder, data)
    with pytest.raises(zoo.WeightsFileError, match="pickle"):
        zoo.from_pretrained(folder)
    assert not marker.exists()


def test_the_pickle_payload_is_live(tmp_path: Path) -> None:
    """Guards the test above: unpickling its payload really does create the marker."""
    marker = tmp_path / "unpickled"
    pickle.loads(pickle.dumps(_CreatesAFileWhenUnpickled(marker)))
    assert marker.exists()


def test_missing_tensor(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    edit_tensors(tmp_path, lambda tensors: tensors.pop("layers.fc3.bias"))
    with pytest.raises(zoo.StateDictMismatchError, match=r"missing tensor layers\.fc3\.bias"):
        zoo.from_pretrained(tmp_path)


def test_unexpected_tensor(tmp_path: Path) -> None:
    saved("bayesian_lenet", tmp_path)
    edit_tensors(tmp_path, lambda tensors: tensors.update(extra=torch.zeros(2)))
    with pytest.raises(zoo.StateDictMismatchError, match="unexpected tensor extra"):
        zoo.from_pretrained(tmp_path)


def test_shape_mismatch(tmp_path: Path) -> None:
    saved("mc_dropout_lenet", tmp_path)
    edit_config(tmp_path, num_classes=5, class_labels=list("abcde"))
    with pytest.raises(
        zoo.StateDictMismatchError, match=r"layers.fc3.weight has shape \(10, 84\).*\(5, 84\)"
    ):
        zoo.from_pretrained(tmp_path)


def test_lenet_weights_under_a_bayesian_config_are_refused(tmp_path: Path) -> None:
    saved("lenet", tmp_path / "lenet")
    saved("bayesian_lenet", tmp_path / "bayes")
    replace_weights(tmp_path / "bayes", (tmp_path / "lenet" / WEIGHTS_NAME).read_bytes())
    with pytest.raises(zoo.StateDictMismatchError) as caught:
        zoo.from_pretrained(tmp_path / "bayes")
    message = str(caught.value)
    assert "missing tensor conv1.weight_mu" in message
    assert "unexpected tensor layers.conv1.weight" in message


@pytest.mark.parametrize("failing_call", ["fsync", "replace"])
def test_an_interrupted_save_leaves_the_previous_files_intact(
    failing_call: str, monkeypatch: pytest.MonkeyPatch, images: torch.Tensor, tmp_path: Path
) -> None:
    first = zoo.create_model("lenet").eval()
    first.save_pretrained(tmp_path)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}

    def crash(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing_call, crash)
    with pytest.raises(zoo.CheckpointError, match="No space left"):
        zoo.create_model("lenet").save_pretrained(tmp_path)
    monkeypatch.undo()
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    assert torch.equal(zoo.from_pretrained(tmp_path)(images), first(images))


def test_a_save_interrupted_between_the_two_files_loads_as_the_new_model(
    monkeypatch: pytest.MonkeyPatch, images: torch.Tensor, tmp_path: Path
) -> None:
    saved("lenet", tmp_path)
    second = zoo.create_model("lenet").eval()
    real_replace, calls = os.replace, []

    def commit_the_config_then_crash(source: str, target: str) -> None:
        calls.append(Path(target).name)
        if Path(target).name == WEIGHTS_NAME:  # the config is in place, the weights are not
            raise OSError(5, "Input/output error")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", commit_the_config_then_crash)
    with pytest.raises(zoo.CheckpointError):
        second.save_pretrained(tmp_path)
    monkeypatch.undo()
    assert calls == [f".{WEIGHTS_NAME}.{sha256_of(second)}.pending", CONFIG_NAME, WEIGHTS_NAME]
    assert torch.equal(zoo.from_pretrained(tmp_path)(images), second(images))
    third = zoo.create_model("lenet").eval()
    third.save_pretrained(tmp_path)  # and the next save leaves two files again
    assert sorted(path.name for path in tmp_path.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    assert torch.equal(zoo.from_pretrained(tmp_path)(images), third(images))


def test_saving_where_a_file_stands_is_a_checkpoint_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    with pytest.raises(zoo.CheckpointError, match="cannot write"):
        saved("lenet", tmp_path / "taken")


def test_safetensors_whose_first_byte_opens_a_pickle_still_loads(
    images: torch.Tensor, tmp_path: Path
) -> None:
    model = zoo.create_model("lenet").eval()
    model.save_pretrained(tmp_path)
    tensors = safetensors.torch.load_file(tmp_path / WEIGHTS_NAME)
    data = next(
        data
        for padding in range(256)
        if (data := safetensors.torch.save(tensors, metadata={"pad": "x" * padding}))[0] == 0x80
    )
    replace_weights(tmp_path, data)
    assert torch.equal(zoo.from_pretrained(tmp_path)(images), model(images))


def test_integer_tensors_are_refused(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    edit_tensors(
        tmp_path, lambda tensors: tensors.update({"layers.fc3.bias": torch.zeros(10).int()})
    )
    with pytest.raises(zoo.StateDictMismatchError, match=r"layers\.fc3\.bias holds torch\.int32"):
        zoo.from_pretrained(tmp_path)


def test_weights_path_that_is_not_a_regular_file(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    (tmp_path / WEIGHTS_NAME).unlink()
    (tmp_path / WEIGHTS_NAME).mkdir()
    with pytest.raises(zoo.WeightsFileError, match="not a regular file"):
        zoo.from_pretrained(tmp_path)


@pytest.mark.parametrize("text", ["[" * 100_000, "{" + '"a": ' + "9" * 5000 + "}"])
def test_config_json_that_python_cannot_parse(text: str, tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    (tmp_path / CONFIG_NAME).write_text(text)
    with pytest.raises(zoo.ConfigFileError, match="not valid JSON"):
        zoo.from_pretrained(tmp_path)


# Hostile and careless input: every refusal is a ZooError that names the file, before any
# large allocation.


@pytest.fixture(scope="module")
def save_races(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """What tests/save_races.py found: saves killed at every step, and saves racing."""
    if not hasattr(os, "fork"):
        pytest.skip("the kills and races fork the saving processes")
    script = Path(__file__).with_name("save_races.py")
    folder = tmp_path_factory.mktemp("save-races")
    source = Path(zoo.__file__).parents[1]  # the zoo this process tests, not another install
    result = subprocess.run(
        [sys.executable, str(script), str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=os.environ | {"PYTHONPATH": str(source)},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_save_killed_at_any_step_leaves_the_old_or_the_new_model(
    save_races: dict[str, dict[str, object]],
) -> None:
    assert save_races["kills"]["failures"] == []
    assert save_races["kills"]["rounds"] >= 18  # three saves, killed at each of 6+ steps


@pytest.mark.parametrize("scenario", ["races", "races_without_folder_locks"])
def test_concurrent_saves_and_loads_never_see_a_mix(
    scenario: str, save_races: dict[str, dict[str, object]]
) -> None:
    assert save_races[scenario]["failures"] == []
    assert save_races[scenario]["overlapping"] >= 12  # of 15 rounds: the saves did race


def test_a_failure_after_the_config_is_in_place_leaves_the_new_model(
    monkeypatch: pytest.MonkeyPatch, images: torch.Tensor, tmp_path: Path
) -> None:
    saved("lenet", tmp_path)
    new = zoo.create_model("lenet").eval()
    real_fsync, renamed = os.fsync, []
    real_replace = os.replace

    def replace(source: str, target: str) -> None:
        real_replace(source, target)
        renamed.append(Path(target).name)

    def fsync(descriptor: int) -> None:
        if renamed == [f".{WEIGHTS_NAME}.{sha256_of(new)}.pending", CONFIG_NAME]:
            raise OSError(5, "Input/output error")  # syncing the folder after the config
        real_fsync(descriptor)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(zoo.CheckpointError, match="Input/output error"):
        new.save_pretrained(tmp_path)
    monkeypatch.undo()
    assert torch.equal(zoo.from_pretrained(tmp_path)(images), new(images))


def sha256_of(model: zoo.ZooModel) -> str:
    from zoo.pretrained import weights_bytes

    return hashlib.sha256(weights_bytes(model)).hexdigest()


def test_a_config_too_large_for_any_model_is_not_read(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    config["num_classes"], config["class_labels"] = 6_000_000, "LABELS"
    labels = "[" + '"c",' * 5_999_999 + '"c"]'  # 24 MB of JSON, written without json.dumps
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config).replace('"LABELS"', labels))
    with pytest.raises(zoo.ConfigFileError, match=r"config\.json: is [\d,]+ bytes, more than"):
        zoo.from_pretrained(tmp_path)


def test_a_huge_num_classes_is_refused_before_the_model_is_built(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    edit_config(tmp_path, num_classes=150_000, class_labels=["c"] * 150_000)
    with pytest.raises(zoo.ConfigFileError, match="num_classes must be an integer from 2 to"):
        zoo.from_pretrained(tmp_path)
    with pytest.raises(zoo.ConfigFileError, match="num_classes"):
        zoo.info.model_info(tmp_path)


def test_the_config_is_checked_against_the_weights_before_the_model_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved("mc_dropout_lenet", tmp_path)
    edit_config(tmp_path, num_classes=5, class_labels=list("abcde"))
    built_on: list[str] = []
    real_init = torch.nn.Linear.__init__

    def record_device(self: torch.nn.Linear, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)
        built_on.append(self.weight.device.type)

    monkeypatch.setattr(torch.nn.Linear, "__init__", record_device)
    with pytest.raises(zoo.StateDictMismatchError, match=r"\(10, 84\).*\(5, 84\)"):
        zoo.from_pretrained(tmp_path)
    assert built_on and set(built_on) == {"meta"}  # no real weights were ever allocated


def test_a_weights_file_larger_than_any_zoo_model_is_not_read(tmp_path: Path) -> None:
    from zoo.limits import MAX_WEIGHTS_BYTES

    saved("lenet", tmp_path)
    with open(tmp_path / WEIGHTS_NAME, "r+b") as handle:
        handle.truncate(MAX_WEIGHTS_BYTES + 1)  # sparse: no disk space used
    with pytest.raises(zoo.WeightsFileError, match="larger than any zoo model could be"):
        zoo.from_pretrained(tmp_path)


def test_a_truncated_file_is_named_by_the_size_its_header_declares(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    data = (tmp_path / WEIGHTS_NAME).read_bytes()
    replace_weights(tmp_path, data[:-64])
    pattern = rf"header declares {len(data):,} bytes, but the file holds {len(data) - 64:,}"
    with pytest.raises(zoo.WeightsFileError, match=pattern):
        zoo.from_pretrained(tmp_path)


def test_a_truncated_safetensors_file_opening_like_a_pickle_is_not_called_one(
    tmp_path: Path,
) -> None:
    saved("lenet", tmp_path)
    tensors = safetensors.torch.load_file(tmp_path / WEIGHTS_NAME)
    data = next(
        data
        for padding in range(256)
        if (data := safetensors.torch.save(tensors, metadata={"pad": "x" * padding}))[0] == 0x80
    )
    header_length = int.from_bytes(data[:8], "little")
    replace_weights(tmp_path, data[: 8 + header_length // 2])  # cut inside its header
    with pytest.raises(zoo.WeightsFileError) as caught:
        zoo.from_pretrained(tmp_path)
    assert "pickle" not in str(caught.value)
    assert "not a valid safetensors file" in str(caught.value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused_on_load_and_on_save(value: float, tmp_path: Path) -> None:
    saved("mc_dropout_lenet", tmp_path / "loaded")
    edit_tensors(tmp_path / "loaded", lambda tensors: tensors["layers.fc3.bias"].fill_(value))
    with pytest.raises(zoo.WeightsFileError, match=r"layers\.fc3\.bias holds NaN or infinite"):
        zoo.from_pretrained(tmp_path / "loaded")
    model = zoo.create_model("mc_dropout_lenet")
    with torch.no_grad():
        model.layers.conv1.weight[0, 0, 0, 0] = value
    with pytest.raises(zoo.CheckpointError, match=r"conv1\.weight holds NaN or infinite"):
        model.save_pretrained(tmp_path / "saved")
    assert not (tmp_path / "saved").exists()


@pytest.mark.parametrize(
    ("preprocessing", "message"),
    [({"mean": 0.1, "std": 1e-300}, "std must be from"), ({"mean": 1e300, "std": 1}, "mean")],
)
def test_normalisation_that_would_overflow_is_refused(
    preprocessing: dict[str, float], message: str, tmp_path: Path
) -> None:
    saved("lenet", tmp_path)
    edit_config(tmp_path, preprocessing=preprocessing)
    with pytest.raises(zoo.ConfigFileError, match=message):
        zoo.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "label", ["\x1b[2J", "7\nfake output line", "\x1b]0;title\x07", "a\u202eb", "\u2028", "x" * 201]
)
def test_labels_that_could_rewrite_a_terminal_are_refused_on_load_and_save(
    label: str, tmp_path: Path
) -> None:
    saved("lenet", tmp_path / "loaded")
    edit_config(tmp_path / "loaded", class_labels=[label] + [str(digit) for digit in range(1, 10)])
    with pytest.raises(zoo.ConfigFileError, match="class label 0"):
        zoo.from_pretrained(tmp_path / "loaded")
    model = zoo.create_model("lenet")
    model.class_labels[0] = label  # changed after the checks of the constructor
    with pytest.raises(zoo.ConfigFileError, match="class label 0"):
        model.save_pretrained(tmp_path / "saved")
    with pytest.raises(zoo.ModelConfigError, match="class label 0"):
        zoo.create_model("lenet", class_labels=[label, *"123456789"])


def test_a_config_version_must_be_a_version(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    edit_config(tmp_path, zoo_version="0.1\x1b[2J")
    with pytest.raises(zoo.ConfigFileError, match="'zoo_version' must be a version"):
        zoo.from_pretrained(tmp_path)


def test_an_empty_folder_name_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(zoo.InvalidInputError, match="the folder name is empty"):
        zoo.create_model("lenet").save_pretrained("")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(zoo.InvalidInputError, match="the model name is empty"):
        zoo.load("")


def test_a_folder_under_home_is_written_and_read_with_a_tilde(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images: torch.Tensor
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    model = zoo.create_model("lenet").eval()
    assert model.save_pretrained("~/models/mine") == tmp_path / "models" / "mine"
    assert not (tmp_path / "~").exists()
    for name in ("~/models/mine", Path("~/models/mine")):
        assert torch.equal(zoo.load(name)(images), model(images))
    with pytest.raises(zoo.CheckpointError, match="no such folder"):
        zoo.load("~/models/other")


@pytest.mark.parametrize(
    ("name", "expected"),
    [(None, "NoneType"), (123, "int"), (b"lenet", "bytes"), (["lenet"], "list")],
)
def test_a_model_name_of_the_wrong_type_says_what_is_expected(name: object, expected: str) -> None:
    with pytest.raises(zoo.InvalidInputError, match=rf"named by a string .* not {expected}"):
        zoo.load(name)  # type: ignore[arg-type]
    with pytest.raises(zoo.InvalidInputError, match=rf"named by a string .* not {expected}"):
        zoo.create_model(name)  # type: ignore[arg-type]
    if name is not None:  # revision=None is the default branch
        with pytest.raises(zoo.ModelConfigError, match=f"revision must be a string.*{expected}"):
            zoo.load("org/name", revision=name)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["a" * 300, "a/" + "b" * 300, "~/" + "c" * 300, "x\0y"])
def test_a_name_no_file_system_can_hold_is_a_one_line_error(name: str) -> None:
    with pytest.raises(zoo.ZooError) as caught:
        zoo.load(name)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 1000


LOAD_BOTH = """
import sys, zoo
for folder in sys.argv[1:]:
    try:
        zoo.load(folder)
    except zoo.ZooError as error:
        print(type(error).__name__, error)
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_in_place_of_a_model_file_is_refused_without_blocking(tmp_path: Path) -> None:
    folders = []
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        folder = tmp_path / name
        saved("lenet", folder)
        (folder / name).unlink()
        os.mkfifo(folder / name)  # a reader that waits for a writer would wait forever
        folders.append(str(folder))
    result = subprocess.run(
        [sys.executable, "-c", LOAD_BOTH, *folders],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"ConfigFileError {folders[0]}/{CONFIG_NAME}: is not a regular file; save the model "
        "again with save_pretrained",
        f"WeightsFileError {folders[1]}/{WEIGHTS_NAME}: is not a regular file",
    ]


def test_a_registered_model_whose_constructor_reads_values_still_saves_and_loads(
    monkeypatch: pytest.MonkeyPatch, images: torch.Tensor, tmp_path: Path
) -> None:
    zoo.list_models()
    monkeypatch.setattr(zoo.registry, "_entrypoints", dict(zoo.registry._entrypoints))

    class CheckedLeNet(zoo.models.LeNet):
        architecture = "checked_lenet"

        def __init__(self, num_classes: int = 10, **kwargs: object) -> None:
            super().__init__(num_classes, **kwargs)
            if not bool(self.layers.fc3.weight.abs().sum() > 0):  # needs values: not on meta
                raise zoo.ModelConfigError("untrained weights must not all be zero")

    @zoo.register_model
    def checked_lenet(**kwargs: object) -> zoo.ZooModel:
        """A LeNet whose constructor reads its own weights."""
        return zoo.models.base.build_model(CheckedLeNet, kwargs)

    model = zoo.create_model("checked_lenet").eval()
    loaded = zoo.from_pretrained(model.save_pretrained(tmp_path))
    assert torch.equal(loaded(images), model(images))
    assert zoo.info.model_info(tmp_path)["num_params"] == 44_426


def test_weights_in_a_float_format_the_zoo_does_not_write_are_refused(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    edit_tensors(
        tmp_path,
        lambda tensors: tensors.update(
            {"layers.fc3.bias": tensors["layers.fc3.bias"].to(torch.float8_e4m3fn)}
        ),
    )
    with pytest.raises(zoo.StateDictMismatchError, match=r"fc3\.bias holds torch\.float8_e4m3fn"):
        zoo.from_pretrained(tmp_path)


def test_tensor_names_and_paths_from_files_stay_on_one_escaped_line(tmp_path: Path) -> None:
    folder = tmp_path / "a\nError: forged"
    saved("lenet", folder)
    extra = {f"evil\nError: forged {index}\x1b[2J": torch.zeros(1) for index in range(20)}
    edit_tensors(folder, lambda tensors: tensors.update(extra))
    with pytest.raises(zoo.StateDictMismatchError) as caught:
        zoo.from_pretrained(folder)
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message
    assert "a\\nError: forged" in message and "and 15 more" in message


def test_float64_weights_beyond_float32_are_refused(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    edit_tensors(
        tmp_path,
        lambda tensors: tensors.update(
            {"layers.fc3.bias": torch.full((10,), 1e300, dtype=torch.float64)}
        ),
    )
    with pytest.raises(zoo.WeightsFileError, match=r"fc3\.bias holds NaN or infinite"):
        zoo.from_pretrained(tmp_path)


def test_a_format_version_of_true_is_not_one(tmp_path: Path) -> None:
    saved("lenet", tmp_path)
    edit_config(tmp_path, format_version=True)
    with pytest.raises(zoo.ConfigFileError, match="'format_version' must be 1 or 2, found True"):
        zoo.from_pretrained(tmp_path)


@pytest.mark.parametrize("mark", ["\u200f", "\u200e", "\u061c"])
def test_direction_marks_in_labels_are_refused(mark: str) -> None:
    with pytest.raises(zoo.ModelConfigError, match="class label 0"):
        zoo.create_model("lenet", class_labels=[f"{mark}1", *"123456789"])
