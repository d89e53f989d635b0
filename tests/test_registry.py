from __future__ import annotations

import subprocess
import sys

import pytest

import zoo
from zoo import registry
from zoo.models import LeNet

from .conftest import ALL_ARCHITECTURES, ARCHITECTURES


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register models without leaking them into other tests."""
    zoo.list_models()  # registers the built-in models first
    monkeypatch.setattr(registry, "_entrypoints", dict(registry._entrypoints))


def test_list_models_returns_the_architectures_sorted() -> None:
    assert zoo.list_models() == sorted(ALL_ARCHITECTURES)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*lenet", sorted(ALL_ARCHITECTURES)),
        ("mc_*", ["mc_dropout_lenet"]),
        ("?enet", ["lenet"]),
        ("b*", ["bayesian_lenet"]),
        ("l*", ["laplace_lenet", "lenet"]),
        ("resnet*", []),
    ],
)
def test_list_models_filters_with_fnmatch_wildcards(pattern: str, expected: list[str]) -> None:
    assert zoo.list_models(pattern) == expected


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_create_model_builds_each_architecture(name: str) -> None:
    model = zoo.create_model(name)
    assert isinstance(model, zoo.ZooModel)
    assert model.architecture == name


@pytest.mark.parametrize("name", ["lenet_mc", "mnist.lenet", "", "LeNet"])
def test_unknown_name_lists_the_known_ones(name: str) -> None:
    with pytest.raises(zoo.UnknownModelError) as caught:
        zoo.create_model(name)
    assert isinstance(caught.value, LookupError)
    message = str(caught.value)
    assert repr(name) in message
    for known in ARCHITECTURES:
        assert known in message


def test_unknown_constructor_argument_names_it_and_the_accepted_ones() -> None:
    with pytest.raises(zoo.ModelConfigError) as caught:
        zoo.create_model("mc_dropout_lenet", dropout=0.5)
    message = str(caught.value)
    assert "dropout" in message
    assert "conv_dropout" in message and "fc_dropout" in message and "class_labels" in message


@pytest.mark.usefixtures("scratch_registry")
def test_registered_entrypoint_is_listed_and_built() -> None:
    @zoo.register_model
    def wide_lenet(**kwargs: object) -> LeNet:
        """A LeNet with dropout by default."""
        return LeNet(fc_dropout=0.3, **kwargs)

    assert "wide_lenet" in zoo.list_models("wide*")
    model = zoo.create_model("wide_lenet", num_classes=3)
    assert model.fc_dropout == 0.3 and model.num_classes == 3


@pytest.mark.usefixtures("scratch_registry")
def test_registering_a_taken_name_is_an_error_not_an_overwrite() -> None:
    def lenet(**kwargs: object) -> LeNet:
        return LeNet(**kwargs)

    with pytest.raises(zoo.DuplicateModelError, match="'lenet' is already registered"):
        zoo.register_model(lenet)
    assert type(zoo.create_model("lenet")) is LeNet
    assert zoo.models.lenet is registry.model_entrypoint("lenet")


@pytest.mark.usefixtures("scratch_registry")
@pytest.mark.parametrize("name", ["LeNet", "lenet.v2", "_private"])
def test_registering_a_name_that_is_not_a_lowercase_identifier_fails(name: str) -> None:
    def entrypoint(**kwargs: object) -> LeNet:
        return LeNet(**kwargs)

    entrypoint.__name__ = name
    with pytest.raises(ValueError, match="lower-case identifier"):
        zoo.register_model(entrypoint)
    assert name not in zoo.list_models()


def test_a_clash_with_a_built_in_name_is_caught_even_before_the_built_ins_load() -> None:
    code = (
        "import zoo\n"
        "def lenet(**kwargs):\n    return None\n"
        "try:\n    zoo.register_model(lenet)\n"
        "except zoo.DuplicateModelError:\n    print('refused')\n"
        "print(zoo.list_models())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split("\n")[:2] == ["refused", str(sorted(ALL_ARCHITECTURES))]


def test_a_tagged_name_with_weights_as_well_is_a_config_error() -> None:
    with pytest.raises(zoo.ModelConfigError, match="names its weights already"):
        zoo.create_model("lenet.mnist", weights=None)
