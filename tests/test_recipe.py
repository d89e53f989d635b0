"""Recipes: every official recipe reads, and every kind of mistake is named before training."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo.cli import main
from zoo.errors import RecipeError
from zoo.training import parse_recipe, read_recipe

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.toml"))

MINIMAL = """
name = "tiny"
seed = 3
[model]
architecture = "mc_dropout_lenet"
"""


def test_the_official_and_seed_recipes_are_all_there() -> None:
    names = {path.name for path in RECIPES}
    assert {
        "lenet_mnist.toml",
        "mc_dropout_lenet_mnist.toml",
        "bayesian_lenet_mnist.toml",
        "seed_mc_dropout.toml",
        "seed_bayesian.toml",
    } <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.name)
def test_each_recipe_reads_and_comments_every_key(path: Path) -> None:
    recipe = read_recipe(path)
    assert recipe.name
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            assert "  # " in line, f"{path.name}: key without a comment: {line}"


def test_the_seed_recipes_match_the_tutorials_they_reproduce() -> None:
    mc = read_recipe(Path(RECIPES[0].parent / "seed_mc_dropout.toml"))
    assert (mc.model.kwargs, mc.training.epochs, mc.training.batch_size) == (
        {"conv_dropout": 0.5, "fc_dropout": 0.5},
        1,
        512,
    )
    assert (mc.optimizer.name, mc.optimizer.lr, mc.optimizer.momentum) == ("sgd", 0.05, 0.9)
    assert (mc.optimizer.weight_decay, mc.evaluation.samples) == (5e-4, 16)
    bayes = read_recipe(Path(RECIPES[0].parent / "seed_bayesian.toml"))
    assert (bayes.optimizer.name, bayes.optimizer.lr, bayes.optimizer.weight_decay) == (
        "adamw",
        1e-3,
        0.0,
    )
    assert (bayes.training.batch_size, bayes.training.loss_samples) == (128, 3)
    assert (bayes.training.kl_weight, bayes.training.epochs) == (1 / 50000, 1)


def test_defaults_fill_what_a_recipe_leaves_out() -> None:
    recipe = parse_recipe(MINIMAL)
    assert recipe.seed == 3
    assert recipe.data.validation_size == 5000
    assert recipe.optimizer.name == "adamw"
    assert recipe.training.kl_weight is None


def test_to_toml_reads_back_to_the_same_recipe() -> None:
    recipe = parse_recipe(MINIMAL + "[model.kwargs]\nconv_dropout = 0.1\n[training]\nepochs = 2\n")
    assert parse_recipe(recipe.to_toml()) == recipe
    assert "kl_weight" not in recipe.to_toml()  # None is spelt by leaving the key out


def test_replace_applies_command_line_overrides_and_checks_them() -> None:
    recipe = parse_recipe(MINIMAL).replace(epochs=7, seed=11)
    assert (recipe.training.epochs, recipe.seed) == (7, 11)
    with pytest.raises(RecipeError, match=r"training\.epochs"):
        parse_recipe(MINIMAL).replace(epochs=0)


def test_differences_name_the_keys_that_differ() -> None:
    base = parse_recipe(MINIMAL)
    assert base.differences(parse_recipe(base.to_toml())) == []
    assert base.replace(epochs=3, seed=4).differences(base) == ["seed", "training.epochs"]


def test_a_left_out_kl_weight_becomes_one_over_the_training_images() -> None:
    bayesian = parse_recipe(MINIMAL.replace("mc_dropout_lenet", "bayesian_lenet"))
    assert bayesian.training.kl_weight is None
    assert bayesian.with_default_kl_weight(400).training.kl_weight == 1 / 400
    explicit = parse_recipe(
        bayesian.to_toml().replace("[training]\n", "[training]\nkl_weight = 0.5\n")
    )
    assert explicit.with_default_kl_weight(400).training.kl_weight == 0.5
    assert bayesian.with_default_kl_weight(400).differences(explicit) == ["training.kl_weight"]
    mc = parse_recipe(MINIMAL)
    assert mc.with_default_kl_weight(400) == mc  # no KL term, nothing to fill in


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("colour = 1\n", "colour"),
        ("[training]\nepoch = 3\n", "training.epoch"),
        ("[optimiser]\nname = 'sgd'\n", "optimiser"),
        ("[training]\nepochs = '3'\n", "training.epochs"),
        ("[training]\nepochs = 2.5\n", "training.epochs"),
        ("[training]\nepochs = true\n", "training.epochs"),
        ("[training]\nepochs = 0\n", "training.epochs"),
        ("[training]\nlabel_smoothing = 1.0\n", "training.label_smoothing"),
        ("[training]\nselect = 'best'\n", "training.select"),
        ("[training]\nkl_weight = 0.1\n", "training.kl_weight"),
        ("[optimizer]\nname = 'adam'\n", "optimizer.name"),
        ("[optimizer]\nlr = nan\n", "optimizer.lr"),
        ("[optimizer]\nlr = -1\n", "optimizer.lr"),
        ("[schedule]\nname = 'linear'\n", "schedule.name"),
        ("[data]\ndataset = 'cifar10'\n", "data.dataset"),
        ("[data]\ndataset = 'fashion_mnist'\n", "data.dataset"),
        ("[optimizer]\nname = 'sgd'\nmomentum = 0\nnesterov = true\n", "optimizer.nesterov"),
        ("[model.kwargs]\nnum_classes = 3\n", "model.kwargs.num_classes"),
        ("[model.kwargs]\nweights = 'mnist'\n", "model.kwargs.weights"),
        ("[data]\nmax_shift = 9\n", "data.max_shift"),
        ("[data]\nvalidation_size = 0\n[training]\nselect = 'best_nll'\n", "training.select"),
        ("[evaluation]\nood = 'kmnist'\n", "evaluation.ood"),
        ("[training]\ndistribute = 'members'\n", "training.distribute"),  # no members
        ("[training]\ndistribute = 'shards'\n", "training.distribute"),
        ("[training]\ndistribute = 2\n", "training.distribute"),
        ("[model.kwargs]\ndropout = 0.5\n", "[model]"),
        ("[model.kwargs]\nfc_dropout = 1.5\n", "[model]"),
    ],
)
def test_a_bad_recipe_is_rejected_naming_the_key(extra: str, key: str) -> None:
    with pytest.raises(RecipeError, match="recipe") as caught:
        parse_recipe(MINIMAL + extra)
    assert key in str(caught.value)


def test_a_left_out_distribution_is_the_models_own() -> None:
    ensemble = parse_recipe(MINIMAL.replace("mc_dropout_lenet", "deep_ensemble_lenet"))
    assert ensemble.training.distribute is None
    assert ensemble.with_default_distribution().training.distribute == "members"
    assert parse_recipe(MINIMAL).with_default_distribution().training.distribute == "batches"
    sharing = parse_recipe(
        MINIMAL.replace("mc_dropout_lenet", "deep_ensemble_lenet")
        + '[training]\ndistribute = "batches"\n'
    )
    assert sharing.training.distribute == "batches"
    assert sharing.with_default_distribution() == sharing
    # a run whose recipe left it out is the run of a recipe that spells out the default
    spelled_out = parse_recipe(ensemble.with_default_distribution().to_toml())
    assert spelled_out.differences(ensemble.with_default_distribution()) == []
    assert spelled_out.differences(ensemble) == ["training.distribute"]


@pytest.mark.parametrize("name", ["", "/tmp/x", "../x", ".hidden", "a b"])
def test_a_name_that_is_not_a_plain_folder_name_is_refused(name: str) -> None:
    with pytest.raises(RecipeError, match="'name' must be letters"):
        parse_recipe(MINIMAL.replace('name = "tiny"', f"name = {name!r}"))


def test_an_unknown_architecture_and_a_missing_key_are_named() -> None:
    for architecture in ("resnet", "lenet.mnist"):
        with pytest.raises(RecipeError, match=r"'model\.architecture' must be one of"):
            parse_recipe(MINIMAL.replace("mc_dropout_lenet", architecture))
    with pytest.raises(RecipeError, match="missing required key 'seed'"):
        parse_recipe(MINIMAL.replace("seed = 3", ""))
    with pytest.raises(RecipeError, match="must be 1 for the deterministic lenet"):
        parse_recipe(MINIMAL.replace("mc_dropout_lenet", "lenet") + "[training]\nloss_samples = 2")


def test_not_toml_and_a_missing_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not valid TOML"):
        parse_recipe("name = ")
    with pytest.raises(RecipeError, match="cannot read recipe"):
        read_recipe(tmp_path / "missing.toml")


def test_zoo_train_rejects_a_bad_recipe_before_any_training(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.toml"
    recipe.write_text(MINIMAL + "[optimizer]\nname = 'adam'\n")
    result = CliRunner().invoke(main, ["train", str(recipe), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "optimizer.name" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
