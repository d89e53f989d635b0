"""Training on several processes: torchrun starts them, gloo joins them on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import zoo
from zoo.errors import DeviceError, RecipeError
from zoo.training import train
from zoo.training.distributed import ALONE, World, batch_share, world_from_environment
from zoo.training.recipe import parse_recipe

# 43 training images in batches of 8: the last batch of 3 is shared 2 and 1.
DETERMINISTIC = """
name = "lenet.two-ranks"
seed = 3
[model]
architecture = "lenet"
[data]
validation_size = 7
max_shift = 0
[training]
epochs = 2
batch_size = 8
[evaluation]
samples = 2
"""


def torchrun(processes: int, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`zoo` run by torchrun on ``processes`` local processes, a free port of their own."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", str(processes), "-m", "zoo", *arguments]
    environment = os.environ | {"OMP_NUM_THREADS": "1", "ZOO_DEVICE": "cpu"}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=environment, check=False
    )


def test_two_ranks_train_what_one_process_trains_on_the_same_global_batch(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    recipe_path = tmp_path / "recipe.toml"
    recipe_path.write_text(DETERMINISTIC)
    out = tmp_path / "two"
    # zoo train --nproc starts torchrun itself
    command = [str(Path(sys.executable).with_name("zoo")), "train", str(recipe_path), "--nproc"]
    command += ["2", "--out", str(out), "--data-dir", str(tiny_data_root)]
    environment = os.environ | {"OMP_NUM_THREADS": "1", "ZOO_DEVICE": "cpu"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=environment, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [f"wrote {out}"]  # rank 0 alone says so
    alone = train(parse_recipe(DETERMINISTIC), tmp_path / "one", data_dir=tiny_data_root)
    together = zoo.from_pretrained(out)
    for (name, expected), actual in zip(
        alone.state_dict().items(), together.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-6, msg=name)
    first = next(iter(alone.state_dict().values()))
    assert not torch.equal(first, zoo.create_model("lenet").state_dict()["layers.conv1.weight"])
    names = {path.name for path in out.iterdir()}
    assert names == {
        "model.safetensors",
        "config.json",
        "train_log.jsonl",
        "recipe.toml",
        "eval.json",
    }
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [(r["world_size"], r["backend"]) for r in log] == [(2, "gloo"), (2, "gloo")]
    alone_log = (tmp_path / "one" / "train_log.jsonl").read_text().splitlines()
    assert all(json.loads(line)["world_size"] == 1 for line in alone_log)
    assert [r["loss"] for r in log] == pytest.approx(
        [json.loads(line)["loss"] for line in alone_log], rel=1e-4
    )


def test_a_batch_the_ranks_cannot_share_is_refused_before_training(
    tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    recipe = parse_recipe(DETERMINISTIC.replace("batch_size = 8", "batch_size = 7"))
    with pytest.raises(RecipeError, match="batch_size 7 cannot be shared equally by 2"):
        train(recipe, tmp_path / "run", data_dir=tiny_data_root)
    assert not (tmp_path / "run").exists()


def test_a_deep_ensemble_is_refused_on_several_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    recipe = parse_recipe(DETERMINISTIC.replace('"lenet"', '"deep_ensemble_lenet"'))
    with pytest.raises(RecipeError, match="trains its members in one process"):
        train(recipe, tmp_path / "run")


def test_the_world_is_read_from_torchruns_variables() -> None:
    assert world_from_environment({}) is ALONE
    assert world_from_environment({"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}) is ALONE
    world = world_from_environment({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (world.rank, world.size, world.local_rank, world.writes) == (3, 4, 1, False)
    for bad in (
        {"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"},
        {"WORLD_SIZE": "2", "RANK": "-1", "LOCAL_RANK": "0"},
        {"WORLD_SIZE": "two", "RANK": "0", "LOCAL_RANK": "0"},
        {"WORLD_SIZE": "2", "RANK": "0"},
        {"WORLD_SIZE": "0", "RANK": "0", "LOCAL_RANK": "0"},
        {"WORLD_SIZE": "2", "RANK": "\u00b2", "LOCAL_RANK": "0"},
        {"WORLD_SIZE": "9" * 40, "RANK": "0", "LOCAL_RANK": "0"},
        {"WORLD_SIZE": "2\n", "RANK": "0", "LOCAL_RANK": "0"},
    ):
        with pytest.raises(DeviceError):
            world_from_environment(bad)


def test_each_rank_takes_an_equal_contiguous_share_of_a_batch() -> None:
    batch = torch.arange(10)
    shares = [batch_share(batch, World(rank, 2, rank, "gloo")) for rank in range(2)]
    assert [share.tolist() for share in shares] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    last = [batch_share(torch.arange(5), World(rank, 2, rank, "gloo")) for rank in range(2)]
    assert [len(share) for share in last] == [3, 2]
    assert torch.equal(batch_share(batch, ALONE), batch)


def test_a_killed_rank_stops_the_run_and_resume_on_as_many_ranks_finishes_it(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    recipe_text = DETERMINISTIC.replace("epochs = 2", "epochs = 80")
    recipe_path = tmp_path / "recipe.toml"
    recipe_path.write_text(recipe_text)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", "-m", "zoo", "train", str(recipe_path)]
    command += ["--out", str(out), "--data-dir", str(tiny_data_root)]
    environment = os.environ | {"OMP_NUM_THREADS": "1", "ZOO_DEVICE": "cpu"}
    launcher = subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "training_state.safetensors").exists():
            assert launcher.poll() is None, launcher.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.05)
        workers = _children(launcher.pid)
        assert len(workers) == 2
        os.kill(workers[-1], signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert "SIGKILL" in stderr or "Signal 9" in stderr or "exitcode" in stderr
    assert not (out / "model.safetensors").exists()
    with pytest.raises(zoo.TrainingStateError, match="trained on 2 process"):
        train(parse_recipe(recipe_text), out, resume=True, data_dir=tiny_data_root)
    resumed = torchrun(
        2,
        "train",
        str(recipe_path),
        "--out",
        str(out),
        "--data-dir",
        str(tiny_data_root),
        "--resume",
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in log] == list(range(1, 81))
    assert {record["world_size"] for record in log} == {2}
    assert zoo.from_pretrained(out).architecture == "lenet"


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started, in the order the kernel lists them."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return sorted(children)


def test_a_last_batch_too_short_to_share_is_left_out() -> None:
    trainer = sys.modules["zoo.training.trainer"]
    assert trainer._steps_per_epoch(43, 8, False, 2) == 6  # 3 left: shared 2 and 1
    assert trainer._steps_per_epoch(41, 8, False, 2) == 5  # 1 left: a rank would get none
    assert trainer._steps_per_epoch(41, 8, False) == 6
    assert trainer._steps_per_epoch(43, 8, True, 2) == 5
