"""save_pretrained / from_pretrained: exact round trips, strict loads, no pickle, atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import safetensors.torch
import torch

import zoo
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
    model.save_pretrained(tmp_path)
    loaded = zoo.from_pretrained(tmp_path)
    assert type(loaded) is type(model)
    assert not loaded.training
    torch.manual_seed(42)
    expected = model.predict(images, samples=8).sample_probs
    torch.manual_seed(42)
    actual = loaded.predict(images, samples=8).sample_probs
    assert torch.equal(actual, expected)
    if model.stochastic:  # loading left the model stochastic
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
        ({"format_version": 2}, "newer than this uncertainty-zoo reads"),
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
    assert calls == [CONFIG_NAME, WEIGHTS_NAME]
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
