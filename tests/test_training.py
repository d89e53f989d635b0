"""The trainer: what a run writes, reproducibility, resuming a killed run, and its parts."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import safetensors.torch
import torch
from click.testing import CliRunner

import zoo
from zoo.cli import main
from zoo.errors import RecipeError, TrainingDivergedError, TrainingStateError
from zoo.training import Recipe, parse_recipe, read_recipe, train
from zoo.training import trainer as trainer_module
from zoo.training.augment import random_shift
from zoo.training.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from zoo.training.optim import build_optimizer, build_schedule
from zoo.training.recipe import OptimizerSection, ScheduleSection

from .conftest import write_random_data_root


def tiny_recipe(architecture: str = "mc_dropout_lenet", **training: object) -> str:
    settings = {"epochs": 2, "batch_size": 8, "validation_samples": 2} | training
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    return f"""
name = "tiny"
seed = 5
[model]
architecture = "{architecture}"
[data]
validation_size = 10
[training]
{lines}
[evaluation]
samples = 2
"""


def weights_sha256(folder: Path) -> str:
    return json.loads((folder / "config.json").read_text())["weights_sha256"]


def test_a_run_writes_the_model_its_log_recipe_and_evaluation(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    recipe = parse_recipe(tiny_recipe())
    model = train(recipe, tmp_path / "run", data_dir=tiny_data_root)
    folder = tmp_path / "run"
    names = {"model.safetensors", "config.json", "train_log.jsonl", "recipe.toml", "eval.json"}
    assert {path.name for path in folder.iterdir()} == names  # the checkpoint is gone
    log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in log] == [1, 2]
    for record in log:
        assert {"loss", "accuracy", "lr", "seconds", "val_nll", "val_accuracy"} <= record.keys()
        assert record["amp"] is None and record["compiled"] is False  # never on the CPU
        assert record["device"].startswith("cpu") and record["hardware"]
        assert "kl" not in record
    assert log[1]["elapsed_seconds"] == pytest.approx(log[0]["seconds"] + log[1]["seconds"])
    ran = read_recipe(folder / "recipe.toml")
    assert ran == recipe.with_default_distribution()  # every default spelled out
    assert ran.training.distribute == "batches"
    report = json.loads((folder / "eval.json").read_text())
    assert report["provenance"]["weights_sha256"] == weights_sha256(folder)
    assert report["provenance"]["samples"] == 2
    loaded = zoo.from_pretrained(folder)
    assert all(
        torch.equal(value, loaded.state_dict()[name]) for name, value in model.state_dict().items()
    )


def test_the_seed_fixes_the_weights(tiny_data_root: Path, tmp_path: Path) -> None:
    recipe = parse_recipe(tiny_recipe())
    for run, seed in (("a", 5), ("b", 5), ("c", 6)):
        train(recipe.replace(seed=seed), tmp_path / run, data_dir=tiny_data_root)
    assert weights_sha256(tmp_path / "a") == weights_sha256(tmp_path / "b")
    assert weights_sha256(tmp_path / "a") != weights_sha256(tmp_path / "c")


def test_training_leaves_the_callers_random_state_alone(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    before = torch.get_rng_state()
    train(parse_recipe(tiny_recipe("lenet")), tmp_path / "run", data_dir=tiny_data_root)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_bayesian_run_logs_the_kl_and_defaults_its_weight_to_one_over_n(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    recipe = parse_recipe(tiny_recipe("bayesian_lenet", loss_samples=2, epochs=1))
    train(recipe, tmp_path / "run", data_dir=tiny_data_root)
    record = json.loads((tmp_path / "run" / "train_log.jsonl").read_text())
    assert record["kl"] > 0
    ran = read_recipe(tmp_path / "run" / "recipe.toml")
    assert ran.training.kl_weight == 1 / 40  # 50 images, 10 held out
    assert ran.differences(recipe) == ["training.distribute", "training.kl_weight"]
    assert ran.differences(recipe.with_default_kl_weight(40).with_default_distribution()) == []


def test_an_existing_run_is_never_overwritten(tiny_data_root: Path, tmp_path: Path) -> None:
    recipe = parse_recipe(tiny_recipe("lenet", epochs=1))
    train(recipe, tmp_path / "run", data_dir=tiny_data_root)
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(TrainingStateError, match=r"already holds a training run.*--resume"):
        train(recipe, tmp_path / "run", data_dir=tiny_data_root)
    with pytest.raises(TrainingStateError, match="no run to resume"):
        train(recipe, tmp_path / "run", data_dir=tiny_data_root, resume=True)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before


def test_too_little_data_for_one_batch_is_a_recipe_error(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    recipe = parse_recipe(tiny_recipe("lenet", batch_size=41))
    with pytest.raises(RecipeError, match="fewer than one batch"):
        train(recipe, tmp_path / "run", data_dir=tiny_data_root)


def interrupt_after_epochs(monkeypatch: pytest.MonkeyPatch, epochs: int) -> None:
    """Make the next run stop with Ctrl-C once ``epochs`` epochs are checkpointed."""
    original = trainer_module._Run._train_one_epoch

    def train_one_epoch(run: trainer_module._Run) -> tuple[float, float, float]:
        if run.epoch == epochs:
            raise KeyboardInterrupt
        return original(run)

    monkeypatch.setattr(trainer_module._Run, "_train_one_epoch", train_one_epoch)


@pytest.mark.parametrize(
    "architecture", ["mc_dropout_lenet", "bayesian_lenet", "deep_ensemble_lenet"]
)
def test_resume_after_an_interruption_gives_the_same_weights(
    architecture: str, tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = parse_recipe(tiny_recipe(architecture, epochs=3, select="best_nll"))
    train(recipe, tmp_path / "whole", data_dir=tiny_data_root)
    with monkeypatch.context() as patch:
        interrupt_after_epochs(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            train(recipe, tmp_path / "resumed", data_dir=tiny_data_root)
    assert load_checkpoint(tmp_path / "resumed" / "training_state.safetensors").epoch == 1
    with pytest.raises(TrainingStateError, match=r"differs in training\.epochs"):
        train(recipe.replace(epochs=4), tmp_path / "resumed", data_dir=tiny_data_root, resume=True)
    if architecture == "bayesian_lenet":  # its checkpoint holds the KL weight filled in
        toml = recipe.to_toml().replace("[training]\n", "[training]\nkl_weight = 0.5\n")
        explicit = parse_recipe(toml)
        with pytest.raises(TrainingStateError, match=r"differs in training\.kl_weight"):
            train(explicit, tmp_path / "resumed", data_dir=tiny_data_root, resume=True)
    train(recipe, tmp_path / "resumed", data_dir=tiny_data_root, resume=True)
    assert weights_sha256(tmp_path / "resumed") == weights_sha256(tmp_path / "whole")
    logs = [(tmp_path / run / "train_log.jsonl").read_text() for run in ("whole", "resumed")]
    assert [json.loads(line)["loss"] for line in logs[0].splitlines()] == [
        json.loads(line)["loss"] for line in logs[1].splitlines()
    ]


@pytest.fixture(scope="module")
def kill_test_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4,000 random images: enough that an epoch takes a noticeable fraction of a second."""
    return write_random_data_root(tmp_path_factory.mktemp("kill-data"), 4000, 100, seed=3)


def test_a_killed_training_process_resumes_bit_identically(
    kill_test_data: Path, tmp_path: Path
) -> None:
    recipe_text = tiny_recipe(epochs=8, batch_size=100).replace(
        "validation_size = 10", "validation_size = 1000"
    )
    recipe_path = tmp_path / "recipe.toml"
    recipe_path.write_text(recipe_text)
    train(parse_recipe(recipe_text), tmp_path / "whole", data_dir=kill_test_data)

    command = [sys.executable, "-m", "zoo.cli", "train", str(recipe_path)]
    command += ["--out", str(tmp_path / "killed"), "--data-dir", str(kill_test_data)]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        deadline = threading.Timer(120, process.kill)  # never hang on a stalled child
        deadline.start()
        assert process.stderr is not None
        for line in process.stderr:
            if re.search(r"epoch 2/8 .*loss", line):  # printed once epoch 2 is checkpointed
                process.send_signal(signal.SIGKILL)
                break
        process.wait()
        deadline.cancel()
    assert process.returncode == -signal.SIGKILL  # killed mid-run, not finished or timed out
    checkpoint = load_checkpoint(tmp_path / "killed" / "training_state.safetensors")
    assert 2 <= checkpoint.epoch < 8
    assert not (tmp_path / "killed" / "model.safetensors").exists()

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert weights_sha256(tmp_path / "killed") == weights_sha256(tmp_path / "whole")


def test_zoo_train_writes_to_runs_name_by_default(
    tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(tiny_recipe("lenet", epochs=1))
    monkeypatch.chdir(tmp_path)
    arguments = ["train", str(recipe), "--data-dir", str(tiny_data_root), "--epochs", "2"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    assert "wrote runs/tiny" in result.stdout
    assert read_recipe(tmp_path / "runs" / "tiny" / "recipe.toml").training.epochs == 2
    again = CliRunner().invoke(main, arguments)
    assert again.exit_code == 2 and "--resume" in again.stderr


def test_random_shift_moves_each_image_by_at_most_max_shift() -> None:
    images = torch.zeros(2000, 28, 28, dtype=torch.uint8)
    images[:, 14, 14] = 255
    shifted = random_shift(images, 2)
    assert shifted.shape == images.shape and shifted.dtype == torch.uint8
    assert torch.equal(shifted.flatten(1).sum(1), images.flatten(1).sum(1))  # nothing lost
    rows, columns = (shifted == 255).nonzero()[:, 1:].T
    offsets = set(zip((rows - 14).tolist(), (columns - 14).tolist(), strict=True))
    assert offsets == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert random_shift(images, 0) is images


def test_random_shift_fills_with_black() -> None:
    images = torch.full((500, 28, 28), 200, dtype=torch.uint8)
    shifted = random_shift(images, 3)
    assert set(shifted.unique().tolist()) == {0, 200}
    assert (shifted == 0).flatten(1).sum(1).max() <= 2 * 3 * 28 + 2 * 3 * 28


@pytest.mark.parametrize(
    ("name", "expected_peak", "expected_last"),
    [("onecycle", 0.1, 0.1 * 1e-3), ("cosine", 0.1, 0.1 * 1e-3), ("constant", 0.1, 0.1)],
)
def test_schedules_reach_their_peak_and_final_rates(
    name: str, expected_peak: float, expected_last: float
) -> None:
    rates = _rates(ScheduleSection(name=name, warmup_fraction=0.3, final_lr_fraction=1e-3))
    assert max(rates) == pytest.approx(expected_peak)
    assert rates[-1] == pytest.approx(expected_last, rel=1e-3)
    if name == "onecycle":
        assert rates[0] == pytest.approx(0.1 / 25) and rates.index(max(rates)) == 29


def test_the_step_schedule_steps_every_step_epochs() -> None:
    rates = _rates(ScheduleSection(name="step", step_epochs=2, gamma=0.5), steps_per_epoch=10)
    assert rates[19] == pytest.approx(0.1) and rates[20] == pytest.approx(0.05)
    assert rates[99] == pytest.approx(0.1 * 0.5**4)


def _rates(section: ScheduleSection, steps_per_epoch: int = 10) -> list[float]:
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, OptimizerSection(name="sgd", lr=0.1))
    schedule = build_schedule(optimizer, section, 100, steps_per_epoch)
    rates = []
    for _ in range(100):  # the rate each of the 100 batches trains with
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def test_a_checkpoint_holds_everything_and_reads_back(tmp_path: Path) -> None:
    model = zoo.create_model("lenet")
    optimizer = build_optimizer(model, OptimizerSection(name="adamw", lr=0.01))
    model(torch.zeros(2, 28, 28, dtype=torch.uint8)).sum().backward()
    optimizer.step()
    state = TrainingState(
        epoch=3,
        recipe_toml=tiny_recipe(),
        weights=model.state_dict(),
        optimizer=optimizer.state_dict(),
        scheduler={"last_epoch": 7, "base_lrs": [0.01]},
        rng={"cpu": torch.get_rng_state()},
        log=[{"epoch": 1, "loss": 0.5}],
        best_weights=model.state_dict(),
        best_nll=0.25,
        epochs_since_best=1,
    )
    loaded = load_checkpoint(save_checkpoint(state, tmp_path))
    assert (loaded.epoch, loaded.recipe_toml, loaded.log) == (3, state.recipe_toml, state.log)
    assert (loaded.best_nll, loaded.epochs_since_best, loaded.scheduler) == (
        0.25,
        1,
        state.scheduler,
    )
    assert loaded.best_weights is not None and loaded.best_weights.keys() == state.weights.keys()
    assert torch.equal(loaded.rng["cpu"], state.rng["cpu"])
    restored = build_optimizer(model, OptimizerSection(name="adamw", lr=0.01))
    restored.load_state_dict(loaded.optimizer)
    saved, reloaded = optimizer.state_dict(), restored.state_dict()
    assert reloaded["param_groups"] == saved["param_groups"]
    assert reloaded["state"].keys() == saved["state"].keys()
    for index, values in saved["state"].items():
        assert values.keys() == reloaded["state"][index].keys()
        assert all(
            torch.equal(value, reloaded["state"][index][key]) for key, value in values.items()
        )


def test_a_damaged_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "training_state.safetensors"
    path.write_bytes(b"\x80\x04 not a checkpoint")
    with pytest.raises(TrainingStateError, match="not a readable training checkpoint"):
        load_checkpoint(path)
    incomplete = {"zoo_training_state": json.dumps({"epoch": 1}), "format": "pt"}
    path.write_bytes(safetensors.torch.save({"x": torch.zeros(1)}, metadata=incomplete))
    with pytest.raises(TrainingStateError, match="recipe_toml"):
        load_checkpoint(path)


def test_lenet_learns_mnist_in_one_epoch(data_root: Path, tmp_path: Path) -> None:
    recipe = read_recipe(Path(__file__).parent.parent / "recipes" / "lenet_mnist.toml")
    train(recipe.replace(epochs=1), tmp_path / "run", data_dir=data_root)
    record = json.loads((tmp_path / "run" / "train_log.jsonl").read_text())
    assert record["val_accuracy"] > 0.97
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["metrics"]["classification"]["acc"] > 0.97


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_zoo_train_on_a_missing_device_is_a_clear_error(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(tiny_recipe("lenet"))
    arguments = ["train", str(recipe), "--out", str(tmp_path / "run"), "--device", "cuda"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 2 and "not available on this machine" in result.stderr


def read_log_of(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


def diverging_recipe(lr: float = 10.0, **training: object) -> str:
    """Plain SGD at a constant rate: at lr=10 the tiny run's loss becomes NaN in epoch 2."""
    return tiny_recipe("lenet", **training) + (
        f'[optimizer]\nname = "sgd"\nlr = {lr}\n[schedule]\nname = "constant"\n'
    )


def test_a_diverging_run_stops_at_the_first_nan_and_keeps_the_last_checkpoint(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    for attempt in range(2):  # the same recipe diverges at the same step again
        with pytest.raises(TrainingDivergedError) as caught:
            train(
                parse_recipe(diverging_recipe()), folder, data_dir=tiny_data_root,
                resume=attempt > 0,
            )  # fmt: skip
        message = str(caught.value)
        assert "loss became nan at epoch 2, step 2 of 5" in message
        assert f"the checkpoint after epoch 1 is kept in {folder}" in message
        assert "--resume --allow-recipe-changes" in message
        assert load_checkpoint(folder / "training_state.safetensors").epoch == 1
        assert not (folder / "model.safetensors").exists()
        assert [record["epoch"] for record in read_log_of(folder)] == [1]


def with_kl_weight(recipe: Recipe, kl_weight: float) -> Recipe:
    return dataclasses.replace(
        recipe, training=dataclasses.replace(recipe.training, kl_weight=kl_weight)
    )


def test_a_diverged_run_goes_on_from_its_checkpoint_under_a_changed_recipe(
    tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, recipe = tmp_path / "run", parse_recipe(tiny_recipe("bayesian_lenet", epochs=3))
    with monkeypatch.context() as patch:
        interrupt_after_epochs(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            train(recipe, folder, data_dir=tiny_data_root)
    options = {"data_dir": tiny_data_root, "resume": True, "allow_recipe_changes": True}
    with pytest.raises(TrainingDivergedError, match="loss became inf at epoch 2, step 1 of 5"):
        train(with_kl_weight(recipe, 1e300), folder, **options)
    assert load_checkpoint(folder / "training_state.safetensors").epoch == 1
    with pytest.raises(TrainingStateError, match=r"differs in training\.kl_weight.*--allow-recipe"):
        train(with_kl_weight(recipe, 0.01), folder, data_dir=tiny_data_root, resume=True)
    train(with_kl_weight(recipe, 0.01), folder, **options)
    log = read_log_of(folder)
    assert [record.get("recipe_changes") for record in log] == [None, ["training.kl_weight"], None]
    assert read_recipe(folder / "recipe.toml").training.kl_weight == 0.01
    assert zoo.load(folder).architecture == "bayesian_lenet"


def test_a_run_that_diverges_in_its_first_epoch_says_there_is_nothing_to_resume(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    recipe = with_kl_weight(parse_recipe(tiny_recipe("bayesian_lenet")), 1e300)
    with pytest.raises(TrainingDivergedError, match=r"epoch 1, step 1 of 5.*no checkpoint"):
        train(recipe, tmp_path / "run", data_dir=tiny_data_root)


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "step"])
def test_resuming_with_changes_moves_the_new_schedule_to_the_step_reached(
    schedule: str, tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = f'[schedule]\nname = "{schedule}"\nstep_epochs = 2\n[training]'
    first = parse_recipe(tiny_recipe(epochs=3).replace("[training]", settings))
    faster = settings.replace("[training]", "[optimizer]\nlr = 2e-3\n[training]")
    second = parse_recipe(tiny_recipe(epochs=4).replace("[training]", faster))
    with monkeypatch.context() as patch:
        interrupt_after_epochs(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            train(first, tmp_path / "resumed", data_dir=tiny_data_root)
    train(second, tmp_path / "fresh", data_dir=tiny_data_root)
    train(
        second, tmp_path / "resumed", data_dir=tiny_data_root, resume=True,
        allow_recipe_changes=True,
    )  # fmt: skip
    logs = {run: read_log_of(tmp_path / run) for run in ("fresh", "resumed")}
    assert [record["lr"] for record in logs["resumed"][1:]] == [
        record["lr"] for record in logs["fresh"][1:]
    ]
    assert logs["resumed"][1]["recipe_changes"] == ["optimizer.lr", "training.epochs"]


def changed_recipe(recipe: Recipe, key: str) -> Recipe:
    """``recipe`` with the setting ``key`` changed."""
    if key == "seed":
        return recipe.replace(seed=recipe.seed + 1)
    if key == "model.kwargs":
        model = dataclasses.replace(recipe.model, kwargs={"fc_dropout": 0.3})
        return dataclasses.replace(recipe, model=model)
    data = dataclasses.replace(recipe.data, validation_size=recipe.data.validation_size + 1)
    return dataclasses.replace(recipe, data=data)


@pytest.mark.parametrize("key", ["model.kwargs", "seed", "data.validation_size"])
def test_what_a_run_cannot_change_midway_is_refused_even_when_changes_are_allowed(
    key: str, tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = parse_recipe(tiny_recipe(epochs=3))
    with monkeypatch.context() as patch:
        interrupt_after_epochs(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            train(recipe, tmp_path / "run", data_dir=tiny_data_root)
    with pytest.raises(TrainingStateError, match=rf"differs in {re.escape(key)}, which a run"):
        train(
            changed_recipe(recipe, key), tmp_path / "run", data_dir=tiny_data_root, resume=True,
            allow_recipe_changes=True,
        )  # fmt: skip


def test_resume_takes_a_recipe_that_differs_only_in_its_evaluation(
    tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = parse_recipe(tiny_recipe(epochs=3))
    train(recipe, tmp_path / "whole", data_dir=tiny_data_root)
    with monkeypatch.context() as patch:
        interrupt_after_epochs(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            train(recipe, tmp_path / "resumed", data_dir=tiny_data_root)
    evaluation = dataclasses.replace(recipe.evaluation, samples=3, seed=9)
    corrected = dataclasses.replace(recipe, evaluation=evaluation)
    train(corrected, tmp_path / "resumed", data_dir=tiny_data_root, resume=True)
    assert weights_sha256(tmp_path / "resumed") == weights_sha256(tmp_path / "whole")
    report = json.loads((tmp_path / "resumed" / "eval.json").read_text())
    assert (report["provenance"]["samples"], report["provenance"]["seed"]) == (3, 9)
    assert read_recipe(tmp_path / "resumed" / "recipe.toml").evaluation.samples == 3


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("[evaluation]\nsamples = 1_000_000_000", r"'evaluation\.samples' must be at most 1,024"),
        ("[training]\nvalidation_samples = 5000", r"'training\.validation_samples' must be at"),
        ("[training]\nloss_samples = 2000", r"'training\.loss_samples' must be at most"),
        ("[training]\nepochs = 1_000_000_000", r"'training\.epochs' must be at most"),
        ("[training]\nbatch_size = 60000\nloss_samples = 16", "image-samples a step"),
        ("[optimizer]\nlr = 1e300", r"'optimizer\.lr' must be at most 10"),
        ("[optimizer]\nweight_decay = 1e300", r"'optimizer\.weight_decay' must be at most"),
        ('[optimizer]\nname = "sgd"\nmomentum = 1.5', r"'optimizer\.momentum' must be below 1"),
    ],
)
def test_settings_that_cannot_finish_are_refused_before_training(
    setting: str, message: str
) -> None:
    base = 'name = "x"\nseed = 0\n[model]\narchitecture = "mc_dropout_lenet"\n'
    with pytest.raises(RecipeError, match=message):
        parse_recipe(base + setting + "\n")


def test_a_recipe_that_is_not_utf8_or_not_a_file_is_a_recipe_error(tmp_path: Path) -> None:
    (tmp_path / "latin1.toml").write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(RecipeError, match="is not UTF-8 text"):
        read_recipe(tmp_path / "latin1.toml")
    with pytest.raises(RecipeError, match="not a regular file"):
        read_recipe(tmp_path)
    result = CliRunner().invoke(main, ["train", str(tmp_path / "latin1.toml")])
    assert result.exit_code == 2 and "is not UTF-8 text" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_train_takes_the_path_of_a_recipe(tiny_data_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "recipe.toml"
    path.write_text(tiny_recipe("lenet", epochs=1))
    for recipe in (str(path), path):
        model = train(recipe, tmp_path / f"run-{type(recipe).__name__}", data_dir=tiny_data_root)
        assert model.architecture == "lenet"
    with pytest.raises(RecipeError, match="a recipe is a path to a TOML file, not int"):
        train(3, tmp_path / "other", data_dir=tiny_data_root)  # type: ignore[arg-type]


HOLD_THE_LOCK = """
import sys, time
from pathlib import Path
from zoo.locks import RunLock
lock = RunLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_run_into_a_folder_in_use_fails_at_once_naming_the_process(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    command = [sys.executable, "-c", HOLD_THE_LOCK, str(folder / trainer_module.LOCK_NAME)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            recipe = parse_recipe(tiny_recipe("lenet", epochs=1))
            with pytest.raises(TrainingStateError) as caught:
                train(recipe, folder, data_dir=tiny_data_root)
            assert str(caught.value) == (
                f"{folder} is in use by another zoo train (process {holder.pid}); wait for it "
                "to end, or choose another --out folder"
            )
            assert list(folder.iterdir()) == [folder / trainer_module.LOCK_NAME]
        finally:
            holder.kill()  # the kernel lets go of a dead process's lock
    train(recipe, folder, data_dir=tiny_data_root)
    assert (folder / "model.safetensors").exists()
    assert not (folder / trainer_module.LOCK_NAME).exists()


def test_ctrl_c_says_how_to_go_on(
    tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(tiny_recipe("lenet", epochs=3))
    arguments = ["train", str(recipe), "--out", str(tmp_path / "run")]
    arguments += ["--data-dir", str(tiny_data_root)]
    for epochs, expected in ((0, "nothing to resume"), (2, "checkpoint after epoch 2 is kept")):
        with monkeypatch.context() as patch:
            interrupt_after_epochs(patch, epochs)
            result = CliRunner().invoke(main, arguments)
        assert result.exit_code == 130
        assert expected in result.stderr and "Aborted" not in result.stderr
    assert "run the same command with --resume" in result.stderr
    result = CliRunner().invoke(main, [*arguments, "--resume"])
    assert result.exit_code == 0, result.output


def test_weights_that_become_nan_in_the_last_step_of_an_epoch_stop_the_run(
    tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original, steps = trainer_module._Run._step, []

    def step_that_ruins_the_weights(run, images, targets):  # type: ignore[no-untyped-def]
        result = original(run, images, targets)  # a finite loss...
        steps.append(run.epoch)
        if steps.count(1) == 5:  # ...but the last of epoch 2's 5 steps leaves a NaN weight
            with torch.no_grad():
                next(run.model.parameters()).view(-1)[0] = math.nan
        return result

    monkeypatch.setattr(trainer_module._Run, "_step", step_that_ruins_the_weights)
    recipe = parse_recipe(tiny_recipe("lenet", epochs=3))
    with pytest.raises(TrainingDivergedError) as caught:
        train(recipe, tmp_path / "run", data_dir=tiny_data_root)
    assert "the weights became NaN or infinite in the last step of epoch 2" in str(caught.value)
    assert "the checkpoint after epoch 1 is kept" in str(caught.value)


def rewrite_checkpoint(path: Path, change: object) -> None:
    """Rewrite the checkpoint's JSON header with ``change(header)`` applied."""
    tensors = safetensors.torch.load_file(path)
    with safetensors.safe_open(path, "pt") as handle:
        metadata = handle.metadata()
    header = json.loads(metadata["zoo_training_state"])
    change(header)  # type: ignore[operator]
    metadata["zoo_training_state"] = json.dumps(header).replace('"NAN"', "NaN")
    path.write_bytes(safetensors.torch.save(tensors, metadata=metadata))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda header: header.update(epoch="1"), "'epoch' is str"),
        (lambda header: header.update(log="x"), "'log' is str"),
        (lambda header: header.update(best_nll="low"), "'best_nll' is str"),
        (lambda header: header.update(epoch=3), "its log has 1 epochs, not 3"),
        (lambda header: header["log"][0].update(loss="NAN"), "NaN is not a number"),
        (lambda header: header["log"][0].update(hardware=7), "'hardware' must be a JSON str"),
        (lambda header: header["scheduler"].update(last_epoch=1), "schedule is not at the end"),
        (lambda header: header["scheduler"].update(base_lrs=["x"]), "schedule's 'base_lrs'"),
        (
            lambda header: header["optimizer"]["param_groups"][0].update(lr="fast"),
            "optimiser's 'lr' is 'fast'",
        ),
    ],
)
def test_a_damaged_or_hostile_checkpoint_is_refused_on_resume(
    change: object,
    message: str,
    tiny_data_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe = parse_recipe(tiny_recipe("lenet", epochs=3))
    with monkeypatch.context() as patch:
        interrupt_after_epochs(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            train(recipe, tmp_path / "run", data_dir=tiny_data_root)
    rewrite_checkpoint(tmp_path / "run" / "training_state.safetensors", change)
    with pytest.raises(TrainingStateError, match=re.escape(message)):
        train(recipe, tmp_path / "run", data_dir=tiny_data_root, resume=True)


def test_a_recipe_nested_too_deep_for_the_parser_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="is not valid TOML"):
        parse_recipe("x = " + "[" * 100_000)


def test_a_one_cycle_warm_up_of_exactly_one_step_is_a_recipe_error(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    recipe = parse_recipe(tiny_recipe("lenet", epochs=1, batch_size=10))  # 40 images: 4 steps
    with pytest.raises(RecipeError, match=r"0\.25 of the run's 4 steps is exactly one step"):
        train(recipe, tmp_path / "run", data_dir=tiny_data_root)
