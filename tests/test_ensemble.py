"""The deep ensemble: one batched pass equal to its members', S = M, built from trained LeNets,
saved, loaded and refused like any model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import zoo
from zoo.cli import main
from zoo.models import DeepEnsembleLeNet


def trained_lenets(count: int) -> list[zoo.ZooModel]:
    """Distinct LeNets, as independently trained members would be."""
    return [zoo.create_model("lenet").eval() for _ in range(count)]


def test_one_batched_pass_gives_each_members_logits(images: torch.Tensor) -> None:
    members = trained_lenets(3)
    ensemble = DeepEnsembleLeNet.from_members(members).eval()
    logits = ensemble(images)
    assert logits.shape == (6, 3, 10)
    for index, member in enumerate(members):
        torch.testing.assert_close(logits[:, index], member(images), rtol=1e-5, atol=1e-5)


def test_the_samples_are_the_members_and_their_disagreement_is_the_information(
    images: torch.Tensor,
) -> None:
    ensemble = zoo.create_model("deep_ensemble_lenet", members=4)
    prediction = ensemble.predict(images, samples=16)  # S = M whatever samples says
    assert prediction.sample_probs.shape == (6, 4, 10)
    assert (prediction.mutual_information > 0).all()
    assert torch.equal(ensemble.predict(images).sample_probs, prediction.sample_probs)
    with pytest.raises(zoo.InvalidInputError, match="samples must be at most"):
        ensemble.predict(images, samples=10_000)


def test_the_same_members_give_no_disagreement(images: torch.Tensor) -> None:
    member = trained_lenets(1)[0]
    prediction = DeepEnsembleLeNet.from_members([member, member]).predict(images)
    assert prediction.mutual_information.max() < 1e-6


def test_large_batches_run_in_chunks_with_the_same_result(
    images: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensemble = zoo.create_model("deep_ensemble_lenet")
    whole = ensemble(images)
    monkeypatch.setitem(zoo.models.base.ROWS_PER_CHUNK, "cpu", 10)  # 2 images a chunk
    torch.testing.assert_close(ensemble(images), whole)


def test_an_ensemble_saves_loads_strictly_and_builds_from_folders(tmp_path: Path) -> None:
    members = trained_lenets(3)
    folders = [member.save_pretrained(tmp_path / f"member{i}") for i, member in enumerate(members)]
    built = zoo.ensemble([str(folders[0]), folders[1], members[2]])
    folder = built.save_pretrained(tmp_path / "ensemble")
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "deep_ensemble_lenet" and config["kwargs"] == {"members": 3}
    loaded = zoo.load(folder)
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    torch.testing.assert_close(loaded(images), built(images))
    torch.testing.assert_close(loaded(images)[:, 1], members[1](images), rtol=1e-5, atol=1e-5)


def test_zoo_ensemble_the_command_writes_a_folder_that_evaluates(
    tmp_path: Path, tiny_data_root: Path
) -> None:
    folders = [str(m.save_pretrained(tmp_path / f"m{i}")) for i, m in enumerate(trained_lenets(2))]
    result = CliRunner().invoke(main, ["ensemble", *folders, "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    assert "a deep ensemble of 2 LeNets" in result.stdout
    report = zoo.evaluate(str(tmp_path / "e"), data_dir=tiny_data_root, ood=None)
    assert report.provenance["samples"] == 2 and report["mi"] > 0


@pytest.mark.parametrize(
    ("members", "error", "message"),
    [
        ("lenet", zoo.InvalidInputError, "members are a list"),
        (["lenet.mnist"], zoo.ModelConfigError, "at least 2 members"),
        (["lenet.mnist", "mc_dropout_lenet.mnist"], zoo.ModelConfigError, "must be lenet"),
        (["x"] * 65, zoo.InvalidInputError, "at most 64 members, got 65"),
    ],
)
def test_members_that_cannot_make_an_ensemble_are_refused(
    members: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        zoo.ensemble(members)  # type: ignore[arg-type]


def test_members_must_agree_in_classes_and_normalisation() -> None:
    first = zoo.create_model("lenet")
    other = zoo.create_model("lenet", mean=0.5)
    with pytest.raises(zoo.ModelConfigError, match="member 2 differs from member 1"):
        DeepEnsembleLeNet.from_members([first, other])


@pytest.mark.parametrize("members", [1, 65, 2.5, True])
def test_a_member_count_out_of_bounds_is_refused(members: object) -> None:
    with pytest.raises(zoo.ModelConfigError, match="members must be"):
        zoo.create_model("deep_ensemble_lenet", members=members)


def test_calibrated_or_weightless_members_are_refused() -> None:
    calibrated = zoo.create_model("lenet")
    calibrated.temperature = 2.0
    with pytest.raises(zoo.ModelConfigError, match="member 2 has temperature 2"):
        zoo.ensemble([zoo.create_model("lenet"), calibrated])
    with torch.device("meta"):
        weightless = zoo.create_model("lenet")
    with pytest.raises(zoo.ModelConfigError, match="member 1 is on the meta device"):
        DeepEnsembleLeNet.from_members([weightless, zoo.create_model("lenet")])


def test_a_non_lenet_member_is_refused_before_the_next_one_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded: list[str] = []
    real_load = zoo.loading.load

    def recording_load(name: str, **options: object) -> zoo.ZooModel:
        loaded.append(name)
        return real_load(name, **options)

    monkeypatch.setattr(zoo.loading, "load", recording_load)
    with pytest.raises(zoo.ModelConfigError, match="member 1 is a mc_dropout_lenet"):
        zoo.ensemble(["mc_dropout_lenet.mnist", "lenet.mnist", "bayesian_lenet.mnist"])
    assert loaded == ["mc_dropout_lenet.mnist"]


def test_an_ensembles_rows_count_against_the_evaluation_bound(tiny_data_root: Path) -> None:
    """M rows per image whatever samples says: 20,000 images x 64 members is too many."""
    ensemble = zoo.create_model("deep_ensemble_lenet", members=64)
    with pytest.raises(zoo.InvalidInputError, match="64 rows per image is 1,280,000"):
        zoo.evaluate(ensemble, samples=1, batch_size=20_000, data_dir=tiny_data_root)


def ensemble_recipe(architecture: str, seed: int, **model: object) -> str:
    """A short run with affine augmentation, so that every random stream is used."""
    kwargs = "".join(f"{key} = {value}\n" for key, value in model.items())
    return f"""
name = "e"
seed = {seed}
[model]
architecture = "{architecture}"
[model.kwargs]
{kwargs}
[data]
validation_size = 10
max_shift = 2
max_rotation = 10.0
max_scale = 0.1
[optimizer]
lr = 3e-3
[training]
epochs = 2
batch_size = 8
[evaluation]
samples = 1
"""


def test_a_recipe_trains_each_member_as_a_lenet_trained_alone_with_its_seed(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    from zoo.training import member_seed, parse_recipe, train

    ensemble = train(
        parse_recipe(ensemble_recipe("deep_ensemble_lenet", 3, members=2)),
        tmp_path / "ensemble",
        data_dir=tiny_data_root,
    )
    seeds = [member_seed(3, member) for member in range(2)]
    members = [
        train(
            parse_recipe(ensemble_recipe("lenet", seed)),
            tmp_path / f"member{seed}",
            data_dir=tiny_data_root,
        )
        for seed in seeds
    ]
    alone = DeepEnsembleLeNet.from_members(members)
    # 14 Adam steps on grouped convolutions agree with the plain ones up to float rounding
    for name, value in ensemble.state_dict().items():
        torch.testing.assert_close(value, alone.state_dict()[name], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(ensemble.conv1_weight[0], ensemble.conv1_weight[1])
    log, *member_logs = (
        [json.loads(line) for line in (tmp_path / run / "train_log.jsonl").read_text().splitlines()]
        for run in ["ensemble", *(f"member{seed}" for seed in seeds)]
    )
    for epoch, record in enumerate(log):  # the loss logged is the members' mean
        mean = sum(member[epoch]["loss"] for member in member_logs) / 2
        assert record["loss"] == pytest.approx(mean, rel=1e-4)


def test_member_seeds_differ_from_small_seeds_and_from_each_other() -> None:
    from zoo.training import member_seed

    seeds = {member_seed(seed, member) for seed in range(20) for member in range(64)}
    assert len(seeds) == 20 * 64
    assert all(1_000_000 < seed < 2**63 for seed in seeds)


def test_a_member_generator_saved_on_another_kind_of_device_is_not_restored() -> None:
    from zoo.training.checkpoint import restore_rng_states, rng_states

    generators = {"member0/augmentation": torch.Generator().manual_seed(1)}
    states = rng_states(generators, torch.device("cpu"))
    assert restore_rng_states(states, generators, torch.device("cpu"))
    states["member0/augmentation"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA state's size
    fresh = generators["member0/augmentation"].get_state()
    assert not restore_rng_states(states, generators, torch.device("cpu"))
    assert torch.equal(generators["member0/augmentation"].get_state(), fresh)


def test_recipes_train_an_ensemble_with_one_sample_per_member() -> None:
    from zoo.training import parse_recipe

    recipe = ensemble_recipe("deep_ensemble_lenet", 0, members=2)
    parse_recipe(recipe)
    with pytest.raises(zoo.RecipeError, match="loss_samples' must be 1 for deep_ensemble_lenet"):
        parse_recipe(recipe.replace("batch_size = 8", "batch_size = 8\nloss_samples = 4"))


def test_forward_members_gives_each_member_only_its_own_batch(images: torch.Tensor) -> None:
    members = trained_lenets(2)
    ensemble = DeepEnsembleLeNet.from_members(members)
    per_member = torch.stack([images, images.flip(0)])  # (M, B, 28, 28)
    logits = ensemble.forward_members(per_member)
    assert logits.shape == (2, 6, 10)
    for index, member in enumerate(members):
        torch.testing.assert_close(logits[index], member(per_member[index]), rtol=1e-5, atol=1e-5)
    with pytest.raises(zoo.InvalidInputError, match="M = 2"):
        ensemble.forward_members(images)


def test_forward_members_runs_a_slice_of_the_members_alone(images: torch.Tensor) -> None:
    ensemble = zoo.create_model("deep_ensemble_lenet", members=4)
    per_member = torch.stack([images.roll(shift, 0) for shift in range(4)])
    every = ensemble.forward_members(per_member)
    some = ensemble.forward_members(per_member[1:3], slice(1, 3))
    assert torch.equal(some, every[1:3])
    some.sum().backward()
    gradient = ensemble.fc1_weight.grad
    assert gradient is not None
    assert gradient[1:3].abs().sum() > 0
    assert not gradient[0].any() and not gradient[3].any()  # the others take no part
    for members in (slice(1, 1), slice(0, 4, 2), slice(5, 9)):
        with pytest.raises(zoo.InvalidInputError, match="consecutive members"):
            ensemble.forward_members(per_member, members)
    with pytest.raises(zoo.InvalidInputError, match="M = 2"):
        ensemble.forward_members(per_member, slice(2, 4))
    for members in (2, slice("a", None), [0, 1]):
        with pytest.raises(zoo.InvalidInputError, match="takes a slice of members"):
            ensemble.forward_members(per_member, members)  # type: ignore[arg-type]
