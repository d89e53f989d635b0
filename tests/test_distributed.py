"""Training on several processes: torchrun starts them, gloo joins them on the CPU."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import zoo
from zoo.cli import main, train_command
from zoo.devices import seeded
from zoo.errors import DeviceError, RecipeError
from zoo.training import train
from zoo.training.distributed import (
    ALONE,
    World,
    _usable_cpu_cores,
    batch_share,
    lost_contact,
    rank_epoch_seed,
    shares,
    world_from_environment,
)
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


# Three members, random affine augmentation, label smoothing, a batch of 7 that 2 processes
# could not share (members are spread, not batches), 36 training images: a last batch of 1.
ENSEMBLE = """
name = "ensemble.spread"
seed = 5
[model]
architecture = "deep_ensemble_lenet"
[model.kwargs]
members = 3
[data]
validation_size = 14
max_shift = 1
max_rotation = 5.0
[training]
epochs = 40
batch_size = 7
label_smoothing = 0.1
[evaluation]
samples = 2
"""

ENVIRONMENT = {"OMP_NUM_THREADS": "1", "ZOO_DEVICE": "cpu"}  # what torchrun gives each rank
# zoo train --nproc starts no more processes than there are cores
NEEDS_TWO_CORES = pytest.mark.skipif(
    _usable_cpu_cores() < 2, reason="zoo train --nproc 2 needs 2 CPU cores"
)


def torchrun_command(processes: int, *arguments: str) -> list[str]:
    """The command that runs `zoo` by torchrun on ``processes`` local processes, on a free port
    of their own."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return [*command, "--nproc-per-node", str(processes), "-m", "zoo", *arguments]


def torchrun(processes: int, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`zoo` run by torchrun on ``processes`` local processes; fails the test if it fails."""
    result = subprocess.run(
        torchrun_command(processes, *arguments),
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | ENVIRONMENT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def train_arguments(recipe: Path, out: Path, data_root: Path, *more: str) -> list[str]:
    return ["train", str(recipe), "--out", str(out), "--data-dir", str(data_root), *more]


def written_recipe(tmp_path: Path, text: str, name: str = "recipe.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def read_log(folder: Path) -> list[dict[str, object]]:
    lines = (folder / "train_log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def assert_same_weights(folder: Path, other: Path) -> None:
    """The two folders hold the same weights, bit for bit."""
    weights, others = (
        load_file(folder / "model.safetensors"),
        load_file(other / "model.safetensors"),
    )
    assert weights.keys() == others.keys()
    for name, value in weights.items():
        assert torch.equal(value, others[name]), name


def kill_a_rank_once(processes: int, arguments: list[str], folder: Path, epochs: int) -> str:
    """Run `zoo` ``arguments`` by torchrun on ``processes`` ranks until ``folder``'s log has
    ``epochs`` epochs, then SIGKILL its last rank; return torchrun's error output."""
    launcher = subprocess.Popen(
        torchrun_command(processes, *arguments),
        env=os.environ | ENVIRONMENT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        log = folder / "train_log.jsonl"
        while not log.exists() or len(log.read_text().splitlines()) < epochs:
            assert launcher.poll() is None, (
                launcher.stderr.read()[-2000:] if launcher.stderr else ""
            )
            assert time.monotonic() < deadline, f"no checkpoint of epoch {epochs} was written"
            time.sleep(0.02)
        workers = _children(launcher.pid)
        assert len(workers) == processes
        os.kill(workers[-1], signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert not (folder / "model.safetensors").exists()
    return stderr


@NEEDS_TWO_CORES
def test_two_ranks_train_what_one_process_trains_on_the_same_global_batch(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    recipe_path = written_recipe(tmp_path, DETERMINISTIC)
    out = tmp_path / "two"
    # zoo train --nproc starts torchrun itself
    command = [str(Path(sys.executable).with_name("zoo")), "train", str(recipe_path), "--nproc"]
    command += ["2", "--out", str(out), "--data-dir", str(tiny_data_root)]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=os.environ | ENVIRONMENT
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
    log, alone_log = read_log(out), read_log(tmp_path / "one")
    assert [(r["world_size"], r["backend"], r["distribute"]) for r in log] == [
        (2, "gloo", "batches")
    ] * 2
    assert all(r["world_size"] == 1 and r["distribute"] is None for r in alone_log)
    # the validation images are shared 4 and 3, and their figures summed
    for key in ("loss", "accuracy", "val_nll", "val_accuracy"):
        assert [r[key] for r in log] == pytest.approx([r[key] for r in alone_log], rel=1e-4), key
    # two machines of one process each, as the README starts them: the same run
    nodes = tmp_path / "nodes"
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rendezvous = ["--nnodes", "2", "--rdzv-backend", "c10d", "--rdzv-id", "nodes"]
    rendezvous += ["--rdzv-endpoint", f"127.0.0.1:{port}", "--nproc-per-node", "1"]
    rendezvous += ["--rdzv-conf", "join_timeout=60"]  # a machine alone gives up in a minute
    command = [sys.executable, "-m", "torch.distributed.run", *rendezvous, "-m", "zoo"]
    command += train_arguments(recipe_path, nodes, tiny_data_root)
    machines = [
        subprocess.Popen(
            command,
            env=os.environ | ENVIRONMENT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [machine.communicate(timeout=300) for machine in machines]
    finally:
        for machine in machines:
            if machine.poll() is None:
                machine.kill()
    assert [machine.returncode for machine in machines] == [0, 0], outputs[0][1][-2000:]
    assert sorted(stdout for stdout, _ in outputs) == ["", f"wrote {nodes}\n"]
    assert_same_weights(nodes, out)


def test_an_ensemble_shares_every_members_batches_when_its_recipe_says_so(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    text = DETERMINISTIC.replace('"lenet"', '"deep_ensemble_lenet"\n[model.kwargs]\nmembers = 2')
    text = text.replace("[training]", '[training]\ndistribute = "batches"')
    recipe_path = written_recipe(tmp_path, text)
    torchrun(2, *train_arguments(recipe_path, tmp_path / "two", tiny_data_root))
    alone = train(parse_recipe(text), tmp_path / "one", data_dir=tiny_data_root)
    together = zoo.from_pretrained(tmp_path / "two")
    for (name, expected), actual in zip(
        alone.state_dict().items(), together.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-6, msg=name)
    assert {r["distribute"] for r in read_log(tmp_path / "two")} == {"batches"}


def test_ranks_spreading_an_ensembles_members_train_it_bit_for_bit_as_one_process_does(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    """Each member is trained whole by one rank, its augmentation stream handed to every rank
    after each epoch: so the run is the same on any number of processes, resumed included."""
    recipe_path = written_recipe(tmp_path, ENSEMBLE)
    with one_thread():  # as torchrun gives each rank
        train(parse_recipe(ENSEMBLE), tmp_path / "one", data_dir=tiny_data_root)
    spread = tmp_path / "spread"
    arguments = train_arguments(recipe_path, spread, tiny_data_root)
    kill_a_rank_once(2, arguments, spread, epochs=3)
    torchrun(3, *arguments, "--resume")  # another number of processes: the same run
    assert_same_weights(spread, tmp_path / "one")
    log, alone_log = read_log(spread), read_log(tmp_path / "one")
    assert {r["world_size"] for r in log[:3]} == {2}
    assert {(r["world_size"], r["distribute"]) for r in log[-3:]} == {(3, "members")}
    # the same losses, summed over the ranks in another order
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in alone_log], rel=1e-6)


def test_the_kl_term_counts_once_a_step_on_several_ranks(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    """A Gaussian prior's exact KL, weighted to dwarf the data term: counted once per rank, it
    would shrink the weights twice as fast on 2 ranks as on 1."""
    text = """
    name = "bayesian.kl"
    seed = 2
    [model]
    architecture = "bayesian_lenet"
    [model.kwargs]
    prior_pi = 1.0
    [data]
    validation_size = 7
    max_shift = 0
    [optimizer]
    name = "sgd"
    lr = 1e-3
    momentum = 0.0
    weight_decay = 0.0
    [schedule]
    name = "constant"
    [training]
    epochs = 1
    batch_size = 8
    kl_weight = 100.0
    [evaluation]
    samples = 2
    """
    recipe_path = written_recipe(tmp_path, text)
    torchrun(2, *train_arguments(recipe_path, tmp_path / "two", tiny_data_root))
    train(parse_recipe(text), tmp_path / "one", data_dir=tiny_data_root)
    with seeded(2):
        start = zoo.create_model("bayesian_lenet", prior_pi=1.0).state_dict()
    one = load_file(tmp_path / "one" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model.safetensors")
    for name in ("fc1.weight_mu", "conv2.weight_mu", "fc1.weight_rho"):
        moved = (one[name] - start[name]).norm()
        assert moved > 0.1 * start[name].norm(), name  # the KL moved it
        assert (two[name] - one[name]).norm() < 0.01 * moved, name  # twice: 0.13 * moved


def test_a_batch_the_ranks_cannot_share_is_refused_before_training(
    tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    recipe = parse_recipe(DETERMINISTIC.replace("batch_size = 8", "batch_size = 7"))
    with pytest.raises(RecipeError, match="batch_size 7 cannot be shared equally by 2"):
        train(recipe, tmp_path / "run", data_dir=tiny_data_root)
    assert not (tmp_path / "run").exists()


def test_nproc_refuses_what_the_processes_could_not_share_before_starting_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def launch(processes: int, arguments: list[str]) -> None:
        raise AssertionError("torchrun started")

    monkeypatch.setattr("zoo.training.distributed.launch", launch)
    odd = written_recipe(tmp_path, DETERMINISTIC.replace("batch_size = 8", "batch_size = 7"))
    result = CliRunner().invoke(main, ["train", str(odd), "--nproc", "2"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "Error: training.batch_size 7 cannot be shared equally by 2 processes; make it a "
        "multiple of 2"
    ]
    result = CliRunner().invoke(
        main, ["train", str(written_recipe(tmp_path, ENSEMBLE)), "--nproc", "4"]
    )
    assert result.exit_code == 2
    assert "4 processes cannot share 3 members" in result.output
    many = written_recipe(tmp_path, DETERMINISTIC.replace("batch_size = 8", "batch_size = 1024"))
    result = CliRunner().invoke(main, ["train", str(many), "--nproc", "1024", "--device", "cpu"])
    assert result.exit_code == 2
    assert re.fullmatch(
        r"Error: 1024 processes are more than this machine's \d+ CPU core\(s\) to run on; "
        r"start at most \d+ here \(torchrun itself starts as many as it is told\)\n",
        result.output,
    )


@NEEDS_TWO_CORES
def test_a_process_that_fails_under_nproc_is_named_in_one_line_without_a_traceback(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    recipe_path = written_recipe(tmp_path, DETERMINISTIC)
    (tmp_path / "empty").mkdir()
    command = [str(Path(sys.executable).with_name("zoo")), "train", str(recipe_path), "--nproc"]
    command += ["2", "--out", str(tmp_path / "empty"), "--resume"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=os.environ | ENVIRONMENT
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    *said, summary = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    # the rank that failed first says why (torchrun may stop the other before it does)
    missing = tmp_path / "empty" / "training_state.safetensors"
    assert said and set(said) <= {
        f"Error: rank {rank}: {missing} is missing: there is no run to resume here"
        for rank in (0, 1)
    }
    assert re.fullmatch(
        r"Error: rank [01] of 2 processes failed \(exit code 2; its error is above\), and "
        r"torchrun stopped the others",
        summary,
    )


def test_a_distribution_that_does_not_apply_is_refused_even_from_code(tmp_path: Path) -> None:
    recipe = parse_recipe(DETERMINISTIC)
    for distribute in ("members", "member"):
        training = dataclasses.replace(recipe.training, distribute=distribute)
        with pytest.raises(RecipeError, match="does not apply to lenet"):
            train(dataclasses.replace(recipe, training=training), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_more_processes_than_members_are_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"WORLD_SIZE": "4", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    recipe = parse_recipe(ENSEMBLE)
    with pytest.raises(RecipeError, match="4 processes cannot share 3 members"):
        train(recipe, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_process_without_a_rendezvous_is_told_to_start_with_torchrun(
    tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(DeviceError, match=r"rank 1 cannot join .*MASTER_ADDR.*torchrun"):
        train(parse_recipe(DETERMINISTIC), tmp_path / "run", data_dir=tiny_data_root)
    assert not (tmp_path / "run").exists()


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
    halves = [batch_share(batch, World(rank, 2, rank, "gloo")) for rank in range(2)]
    assert [share.tolist() for share in halves] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    last = [batch_share(torch.arange(5), World(rank, 2, rank, "gloo")) for rank in range(2)]
    assert [len(share) for share in last] == [3, 2]
    assert torch.equal(batch_share(batch, ALONE), batch)
    for count in range(12):
        for size in range(1, 6):
            expected = [part.tolist() for part in torch.arange(count).tensor_split(size)]
            assert [list(share) for share in shares(count, size)] == expected


def test_every_rank_and_epoch_draws_from_a_seed_of_its_own() -> None:
    seeds = {
        rank_epoch_seed(seed, rank, epoch, member)
        for seed in (0, 1)
        for rank in range(4)
        for epoch in range(4)
        for member in (None, 0, 1)
    }
    assert len(seeds) == 2 * 4 * 4 * 3
    assert rank_epoch_seed(0, 1, 2) == rank_epoch_seed(0, 1, 2)  # a resumed run draws it again
    assert all(0 <= seed < 2**63 for seed in seeds)


def test_ranks_sharing_batches_draw_their_own_numbers_afresh_each_epoch(tmp_path: Path) -> None:
    """Dropout masks and weight noise from torch's generator, and each member's augmentation
    from its own: different on every rank and in every epoch, the same again for a rank and
    epoch (so that a resumed run draws them again)."""
    trainer = sys.modules["zoo.training.trainer"]
    text = ENSEMBLE.replace("[training]", '[training]\ndistribute = "batches"')
    recipe = parse_recipe(text).with_default_kl_weight(36)
    images = torch.zeros(50, 28, 28, dtype=torch.uint8)
    labels = torch.zeros(50, dtype=torch.long)
    data = trainer.TrainingData(images[:36], labels[:36], images[36:], labels[36:])
    drawn = {}
    for rank in (0, 1):
        run = trainer._Run(recipe, data, torch.device("cpu"), tmp_path, False, World(rank, 2, rank))
        for epoch in (0, 1, 0):
            run.epoch = epoch
            run._reseed_for_epoch()
            augmentations = [stream.augmentation for stream in run.streams]
            draws = [torch.rand(4), *(torch.rand(4, generator=g) for g in augmentations)]
            numbers = tuple(torch.cat(draws).tolist())
            assert drawn.setdefault((rank, epoch), numbers) == numbers
    streams = [
        numbers[4 * stream : 4 * stream + 4] for numbers in drawn.values() for stream in range(4)
    ]
    assert len(set(streams)) == len(streams) == 4 * 4  # no stream repeats another


def test_a_collective_that_lost_another_process_is_told_from_other_errors() -> None:
    two = World(0, 2, 0, "gloo")
    gloo = "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error: reset by peer"
    assert lost_contact(RuntimeError(gloo), two)
    assert lost_contact(
        RuntimeError("NCCL error in: ProcessGroupNCCL.cpp, remote process exited"), two
    )
    assert not lost_contact(RuntimeError(gloo), ALONE)  # alone, nothing to lose
    assert not lost_contact(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), two)
    assert not lost_contact(ValueError(gloo), two)


def test_the_earliest_bad_step_of_any_rank_is_the_one_reported() -> None:
    trainer = sys.modules["zoo.training.trainer"]
    steps = 9
    nan_at_5 = trainer._bad_step_key(torch.tensor(float("nan")), 5, steps)
    inf_at_3 = trainer._bad_step_key(torch.tensor(float("inf")), 3, steps)
    minus_inf_at_7 = trainer._bad_step_key(torch.tensor(float("-inf")), 7, steps)
    keys = torch.stack([nan_at_5, inf_at_3, minus_inf_at_7, torch.tensor(0.0)])
    assert trainer._bad_step(keys.max().item(), steps) == (3, float("inf"))
    step, loss = trainer._bad_step(nan_at_5.item(), steps)
    assert step == 5 and loss != loss  # NaN survives
    assert trainer._bad_step(minus_inf_at_7.item(), steps) == (7, float("-inf"))
    assert trainer._bad_step(0.0, steps) == (None, 0.0)
    assert trainer._bad_step(trainer._bad_step_key(torch.tensor(1e39), 1, 1).item(), 1)[0] == 1


def test_nproc_hands_every_option_it_was_given_on_to_the_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched: list[tuple[int, list[str]]] = []

    def launch(processes: int, arguments: list[str]) -> None:
        launched.append((processes, arguments))

    monkeypatch.setattr("zoo.training.distributed.launch", launch)
    monkeypatch.setattr("zoo.training.distributed._usable_cpu_cores", lambda: 2)
    monkeypatch.chdir(tmp_path)
    recipe_path = written_recipe(tmp_path, DETERMINISTIC, name="-odd name.toml")
    given = ["--nproc", "2", "--epochs", "4", "--seed", "9", "--resume"]
    given += ["--allow-recipe-changes", "--device", "cpu", "--out", "o u t"]
    given += ["--data-dir", str(tmp_path / "data"), "--", recipe_path.name]
    result = CliRunner().invoke(main, ["train", *given])
    assert result.exit_code == 0, result.output
    [(processes, arguments)] = launched
    assert processes == 2
    assert arguments[0] == "train" and "--nproc" not in arguments
    handed_on = train_command.make_context("train", arguments[1:]).params
    assert handed_on == train_command.make_context("train", given).params | {"nproc": 1}
    launched.clear()
    result = CliRunner().invoke(main, ["train", str(recipe_path), "--nproc", "2"])
    assert result.exit_code == 0, result.output
    assert launched == [(2, ["train", "--", str(recipe_path)])]  # defaults stay unsaid


def test_a_killed_rank_stops_the_run_and_resume_on_as_many_ranks_repeats_it_bit_for_bit(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    """MC dropout with random shifts: each rank draws its masks and shifts from the seed, its
    rank and the epoch, so that a resumed run draws what the uninterrupted one drew."""
    text = DETERMINISTIC.replace('"lenet"', '"mc_dropout_lenet"').replace(
        "epochs = 2", "epochs = 40"
    )
    recipe_path = written_recipe(tmp_path, text.replace("max_shift = 0", "max_shift = 2"))
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    arguments = train_arguments(recipe_path, stopped, tiny_data_root)
    stderr = kill_a_rank_once(2, arguments, stopped, epochs=2)
    assert "SIGKILL" in stderr or "Signal 9" in stderr or "exitcode" in stderr
    recipe = parse_recipe(recipe_path.read_text())
    with pytest.raises(zoo.TrainingStateError, match="trained on 2 process"):
        train(recipe, stopped, resume=True, data_dir=tiny_data_root)
    torchrun(2, *arguments, "--resume")
    torchrun(2, *train_arguments(recipe_path, whole, tiny_data_root))
    assert_same_weights(stopped, whole)
    log = read_log(stopped)
    assert [record["epoch"] for record in log] == list(range(1, 41))
    assert {record["world_size"] for record in log} == {2}
    assert [record["loss"] for record in log] == [record["loss"] for record in read_log(whole)]
    assert zoo.from_pretrained(stopped).architecture == "mc_dropout_lenet"


def _children(pid: int) -> list[int]:
    """The `zoo` processes ``pid`` started, by process id."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return sorted(child for child in children if b"zoo" in _command_line(child))


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # ended meanwhile
        return b""


def test_a_last_batch_too_short_to_share_is_left_out() -> None:
    trainer = sys.modules["zoo.training.trainer"]
    assert trainer._steps_per_epoch(43, 8, False, 2) == 6  # 3 left: shared 2 and 1
    assert trainer._steps_per_epoch(41, 8, False, 2) == 5  # 1 left: a rank would get none
    assert trainer._steps_per_epoch(41, 8, False) == 6
    assert trainer._steps_per_epoch(43, 8, True, 2) == 5
