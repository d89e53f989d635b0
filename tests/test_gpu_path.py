"""What the GPU path needs, checked on the CPU: no float64 on the device, no wait for the device
in a training step, the bfloat16 gate, chunk sizes that never change results, full float32
precision in evaluations, seeding only the device in use, and what a resumed run says when its
device changed. tests/test_cuda.py checks the same on a real GPU when there is one."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from torch.overrides import TorchFunctionMode

import zoo
from zoo.cli import main
from zoo.devices import deterministic_algorithms, seeded, select_device, to_host
from zoo.errors import DeviceError
from zoo.models import base
from zoo.training import parse_recipe, train
from zoo.training import trainer as trainer_module
from zoo.training.checkpoint import rng_states
from zoo.training.optim import build_optimizer
from zoo.training.recipe import OptimizerSection

from .test_training import interrupt_after_epochs, tiny_recipe

# The calls that make the host wait for the device when the tensor lives on a GPU.
_WAITS = {"__bool__", "item", "tolist", "__int__", "__float__", "__index__", "nonzero"}


class _Watch(TorchFunctionMode):
    """Records the calls that zoo's own code makes which would wait for a GPU, and every
    float64 tensor that any call returns."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[str] = []
        self.float64: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = getattr(func, "__name__", str(func))
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if name in _WAITS and caller.startswith("zoo."):
            self.waits.append(f"{caller}.{name}")
        result = func(*args, **(kwargs or {}))
        if isinstance(result, torch.Tensor) and result.dtype == torch.float64:
            self.float64.append(f"{caller}.{name}")
        return result


def affine_recipe(architecture: str = "mc_dropout_lenet", **training: object) -> str:
    """A tiny recipe whose augmentation makes float batches, as the official recipes do."""
    recipe = tiny_recipe(architecture, **training)
    return recipe.replace("[data]\n", "[data]\nmax_rotation = 10.0\nmax_scale = 0.1\n")


def watch_epochs(monkeypatch: pytest.MonkeyPatch) -> list[_Watch]:
    """Run every training epoch (and nothing else) under a fresh `_Watch`; return them."""
    watches: list[_Watch] = []
    original = trainer_module._Run._train_one_epoch

    def train_one_epoch(run: trainer_module._Run) -> tuple[float, float, float]:
        with _Watch() as watch:
            watches.append(watch)
            return original(run)

    monkeypatch.setattr(trainer_module._Run, "_train_one_epoch", train_one_epoch)
    return watches


@pytest.mark.parametrize("architecture", ["mc_dropout_lenet", "bayesian_lenet"])
def test_a_training_step_never_waits_for_the_device_nor_makes_float64(
    architecture: str, tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 steps an epoch (40 images, batches of 2), with the progress bar on: the loss is read
    on the host every 16 steps and at the end, and nothing in a step makes float64, which
    Apple's MPS lacks."""
    watches = watch_epochs(monkeypatch)
    recipe = parse_recipe(affine_recipe(architecture, batch_size=2, epochs=1))
    train(recipe, tmp_path / "run", data_dir=tiny_data_root, progress=True)
    (watch,) = watches
    reads = "zoo.training.trainer.tolist"
    assert watch.waits == [reads] * 3  # steps 16 and 20, then the epoch's sums
    assert watch.float64 == []


def test_float_images_from_users_are_still_checked_after_training(tmp_path: Path) -> None:
    model = zoo.create_model("lenet")
    images = torch.zeros(2, 28, 28)
    images[1, 3, 4] = float("nan")
    with model.inputs_known_finite():
        assert model(images).shape == (2, 10)  # not checked within the block
    with pytest.raises(zoo.InvalidInputError, match="NaN or infinity"):
        model(images)


class _FakeMPSTensor:
    """What an MPS tensor does with float64 (the MPS framework has none): converting it on the
    device fails; moving it to the CPU first works."""

    device = torch.device("mps")

    def __init__(self, values: torch.Tensor) -> None:
        self.values = values

    def to(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if torch.float64 in (*args, kwargs.get("dtype")):
            raise TypeError("Cannot convert a MPS Tensor to float64 dtype")
        assert args in (("cpu",), (torch.device("cpu"),)) and not kwargs
        return self.values.clone()


def test_results_move_to_the_host_before_they_become_float64() -> None:
    values = torch.rand(3, 4)
    with pytest.raises(TypeError, match="MPS"):
        _FakeMPSTensor(values).to("cpu", torch.float64)  # what evaluation used to do
    host = to_host(_FakeMPSTensor(values), torch.float64)  # type: ignore[arg-type]
    assert host.dtype == torch.float64 and torch.equal(host, values.double())


def test_evaluation_makes_float64_only_on_the_host(
    tiny_data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved: list[tuple[str, torch.dtype | None]] = []

    def recording_to_host(tensor: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        moved.append((tensor.device.type, dtype))
        return to_host(tensor, dtype)

    monkeypatch.setattr("zoo.evaluation.to_host", recording_to_host)
    with _Watch() as watch:
        zoo.evaluate(zoo.create_model("mc_dropout_lenet"), samples=2, data_dir=tiny_data_root)
    assert len(moved) == 4 and set(moved) == {("cpu", torch.float64)}  # 2 batches x 2 tensors
    model_calls = [call for call in watch.float64 if call.startswith("zoo.models")]
    assert model_calls == []


def test_bfloat16_autocast_needs_a_training_gpu_that_computes_in_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GPU 0 is an A100 (8.0), GPU 1 a V100 (7.0), whose bfloat16 is emulated."""
    capability = {0: (8, 0), 1: (7, 0)}
    monkeypatch.setattr(
        torch.cuda, "get_device_capability", lambda device: capability[device.index]
    )
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: pytest.fail("asked"))
    recipe = parse_recipe(tiny_recipe("lenet"))
    assert trainer_module._amp_dtype(recipe, torch.device("cuda", 0)) == torch.bfloat16
    assert trainer_module._amp_dtype(recipe, torch.device("cuda", 1)) is None
    assert trainer_module._amp_dtype(recipe, torch.device("cpu")) is None
    no_amp = parse_recipe(tiny_recipe("lenet", cuda_amp=False))
    assert trainer_module._amp_dtype(no_amp, torch.device("cuda", 0)) is None


@pytest.mark.parametrize("name", ["mc_dropout_lenet", "bayesian_lenet"])
def test_the_chunk_size_never_changes_the_samples(
    name: str, images: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 images x 16 samples are three draw groups; computed in chunks of one group, of
    several, or all at once, they give the same logits."""
    model = zoo.create_model(name)
    batch = images.repeat(50, 1, 1)
    outputs = []
    for rows in (128, 2048, 4096, 65536):
        monkeypatch.setitem(base.ROWS_PER_CHUNK, "cpu", rows)
        with seeded(3):
            outputs.append(model(batch, 16))
    for output in outputs[1:]:
        torch.testing.assert_close(output, outputs[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(outputs[0][:, 0], outputs[0][:, 1])  # the samples do differ


def test_a_dropout_layer_switched_off_by_hand_stays_off() -> None:
    model = zoo.create_model("mc_dropout_lenet", conv_dropout=0.0)
    for layer in model.modules():
        if isinstance(layer, torch.nn.Dropout):
            layer.eval()
    logits = model(torch.zeros(3, 28, 28, dtype=torch.uint8), 4)
    assert logits.shape == (3, 4, 10) and torch.equal(logits[:, 0], logits[:, 3])


def tf32_settings() -> list[object]:
    """What torch says of TF32, through both of its views ("refused" where it will not read
    a mix of the two)."""
    backends = torch.backends
    readers = (
        lambda: backends.cuda.matmul.allow_tf32,
        lambda: backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision,
        lambda: backends.cuda.matmul.fp32_precision,
        lambda: backends.cudnn.conv.fp32_precision,
        lambda: backends.cudnn.rnn.fp32_precision,
    )
    values: list[object] = []
    for read in readers:
        try:
            values.append(read())
        except RuntimeError:
            values.append("refused")
    return values


def _tf32_through_the_older_view() -> None:
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True


def _tf32_through_the_newer_view() -> None:
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    torch.backends.cudnn.conv.fp32_precision = "tf32"


@pytest.fixture
def torch_defaults_after() -> Any:
    yield
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.fp32_precision = "none"
    torch.backends.cudnn.allow_tf32 = True


@pytest.mark.parametrize(
    "set_up", [lambda: None, _tf32_through_the_older_view, _tf32_through_the_newer_view]
)
def test_evaluation_turns_tf32_off_records_it_and_restores_it(
    set_up: Any, tiny_data_root: Path, torch_defaults_after: None
) -> None:
    """Whichever way the caller set TF32, the evaluation runs without it, and afterwards torch
    reads back what it read before, in both views."""
    set_up()
    before = tf32_settings()
    seen: list[list[object]] = []
    model = zoo.create_model("lenet")
    model.register_forward_hook(lambda *_: seen.append(tf32_settings()))
    report = zoo.evaluate(model, data_dir=tiny_data_root, ood=None)
    assert seen and all(values[:3] == [False, False, "highest"] for values in seen)
    assert tf32_settings() == before
    expected = {"cuda_matmul": "ieee", "cudnn_conv": "ieee"}
    assert report.provenance["float32_precision"] == expected


def test_cpu_work_never_touches_cuda(tiny_data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a GPU machine: CUDA is there, but seeding, evaluating and checkpointing the random
    state on the CPU must not initialise it or seed it."""

    def untouchable(*args: object, **kwargs: object) -> None:
        pytest.fail("CUDA was touched by work on the CPU")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for name in ("get_rng_state", "get_rng_state_all", "manual_seed", "manual_seed_all", "init"):
        monkeypatch.setattr(torch.cuda, name, untouchable)
    before = torch.get_rng_state()
    with seeded(4, "cpu"):
        first = torch.rand(3)
    with seeded(4):
        assert torch.equal(torch.rand(3), first)
    assert torch.equal(torch.get_rng_state(), before)
    zoo.evaluate(zoo.create_model("mc_dropout_lenet"), samples=2, data_dir=tiny_data_root)
    states = rng_states({"batch_order": torch.Generator()}, torch.device("cpu"))
    assert set(states) == {"cpu", "batch_order"}


def test_zoo_device_decides_what_auto_means(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_DEVICE", "cpu")
    assert select_device("auto") == torch.device("cpu")
    monkeypatch.setenv("ZOO_DEVICE", "tpu")
    with pytest.raises(DeviceError, match=r"^\$ZOO_DEVICE: unknown device 'tpu'"):
        select_device("auto")
    monkeypatch.setenv("ZOO_DEVICE", f"cuda:{torch.cuda.device_count()}")
    with pytest.raises(DeviceError, match=r"^\$ZOO_DEVICE: .* not available"):
        select_device("auto")
    monkeypatch.setattr("zoo.devices._best_available", lambda: "cpu")
    for unset in ("", "auto"):
        monkeypatch.setenv("ZOO_DEVICE", unset)
        assert select_device("auto") == torch.device("cpu")
    assert select_device("cpu") == torch.device("cpu")  # a named device needs no variable


def test_auto_names_the_gpu_it_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    """So that a run started with --device auto and resumed with --device cuda:0 is on the
    same device by its log."""
    monkeypatch.setenv("ZOO_DEVICE", "auto")
    monkeypatch.setattr("zoo.devices._best_available", lambda: "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert select_device("auto") == select_device("cuda") == torch.device("cuda", 1)


@pytest.mark.filterwarnings("default::zoo.errors.ZooWarning")  # shown, as outside the tests
def test_a_run_resumed_on_another_device_says_so(
    tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(tiny_recipe("lenet", epochs=2))
    for run in ("same", "other"):
        with monkeypatch.context() as patch:
            interrupt_after_epochs(patch, 1)
            with pytest.raises(KeyboardInterrupt):
                train(recipe, tmp_path / run, data_dir=tiny_data_root)

    def resume(run: str) -> list[str]:
        arguments = ["train", str(recipe), "--out", str(tmp_path / run), "--resume"]
        result = CliRunner().invoke(main, [*arguments, "--data-dir", str(tiny_data_root)])
        assert result.exit_code == 0, result.output
        return [line for line in result.stderr.splitlines() if line.startswith("Warning:")]

    assert resume("same") == []
    monkeypatch.setattr(trainer_module, "describe_device", lambda device: "cuda:0 (Some GPU)")
    (warning,) = resume("other")
    assert "trained on cpu" in warning and "goes on on cuda:0 (Some GPU)" in warning
    log = [
        json.loads(line)
        for line in (tmp_path / "other" / "train_log.jsonl").read_text().splitlines()
    ]
    assert [record["device"] for record in log] == [log[0]["device"], "cuda:0 (Some GPU)"]


def test_the_deterministic_setting_holds_for_the_run_only_and_is_logged(
    tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    during: list[tuple[bool, bool, bool, str | None]] = []
    original = trainer_module._Run._step

    def step(run: trainer_module._Run, *args: torch.Tensor) -> Any:
        during.append(
            (
                torch.are_deterministic_algorithms_enabled(),
                torch.backends.cudnn.deterministic,
                torch.backends.cudnn.benchmark,
                os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
            )
        )
        return original(run, *args)

    monkeypatch.setattr(trainer_module._Run, "_step", step)
    recipe = parse_recipe(tiny_recipe("lenet", epochs=1, deterministic=True))
    train(recipe, tmp_path / "on", data_dir=tiny_data_root)
    assert set(during) == {(True, True, False, ":4096:8")}
    assert not torch.are_deterministic_algorithms_enabled()
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    during.clear()
    train(parse_recipe(tiny_recipe("lenet", epochs=1)), tmp_path / "off", data_dir=tiny_data_root)
    assert {flags[0] for flags in during} == {False}
    for run, expected in (("on", True), ("off", False)):
        record = json.loads((tmp_path / run / "train_log.jsonl").read_text())
        assert record["deterministic"] is expected
    with deterministic_algorithms(False):
        assert not torch.are_deterministic_algorithms_enabled()


def test_deterministic_gpu_runs_take_the_nll_by_a_gather_that_equals_torchs_loss() -> None:
    """torch has no deterministic NLL kernel on CUDA; the gather the trainer uses there gives
    the loss F.cross_entropy gives, label smoothing included."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 10, generator=generator) * 3
    targets = torch.randint(0, 10, (64,), generator=generator)
    for smoothing in (0.0, 0.1):
        gathered = trainer_module._gathered_nll(logits.log_softmax(-1), targets, smoothing)
        expected = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=smoothing)
        torch.testing.assert_close(gathered.mean(), expected)
    on_a_gpu = torch.empty(2, 10, device="meta")  # any device but the CPU
    with deterministic_algorithms(True):
        assert trainer_module._gathers_nll(on_a_gpu)
        assert not trainer_module._gathers_nll(logits)  # the CPU keeps torch's own loss
    assert not trainer_module._gathers_nll(on_a_gpu)


def test_a_compiled_recipe_drops_the_last_partial_batch_on_every_device(
    tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 training images in batches of 16: 2 full batches and one of 8, which static shapes
    leave out; the schedule counts the steps that run."""
    sizes: list[int] = []
    original = trainer_module._Run._step

    def step(run: trainer_module._Run, images: torch.Tensor, targets: torch.Tensor) -> Any:
        sizes.append(len(targets))
        return original(run, images, targets)

    monkeypatch.setattr(trainer_module._Run, "_step", step)
    for compiled, expected in ((True, [16, 16] * 3), (False, [16, 16, 8] * 3)):
        sizes.clear()
        recipe = parse_recipe(tiny_recipe("lenet", epochs=3, batch_size=16, cuda_compile=compiled))
        model = train(recipe, tmp_path / str(compiled), data_dir=tiny_data_root)
        assert sizes == expected and isinstance(model, zoo.ZooModel)


def test_adamw_runs_fused_on_cuda_and_its_state_resumes_anywhere() -> None:
    model = zoo.create_model("lenet")
    section = OptimizerSection(name="adamw", lr=0.01)
    fused = build_optimizer(model, section, torch.device("cuda"))
    assert fused.param_groups[0]["fused"] is True
    plain = build_optimizer(model, section, torch.device("cpu"))
    assert plain.param_groups[0]["fused"] is None
    model(torch.zeros(2, 28, 28, dtype=torch.uint8)).sum().backward()
    fused.step()  # fused AdamW runs on the CPU too
    state = fused.state_dict()
    trainer_module._check_state_like(state, plain.state_dict(), "the optimiser's")
    trainer_module._take_implementation_settings(state, plain)
    plain.load_state_dict(state)
    assert plain.param_groups[0]["fused"] is None and len(plain.state) == len(fused.state)


def test_per_image_summaries_read_each_field_once(images: torch.Tensor) -> None:
    prediction = zoo.create_model("mc_dropout_lenet").predict(images.repeat(10, 1, 1), 4)
    with _Watch() as watch:
        summaries = prediction.per_image()
    assert len(summaries) == 60 and len(watch.waits) == 7  # five fields, votes, probabilities
    assert summaries[7]["confidence"] == float(prediction.probs[7].max())


def load_gpu_check() -> Any:
    path = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_gpu_check_says_when_there_is_no_gpu_and_runs_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gpu_check = load_gpu_check()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["gpu_check.py"])
    assert gpu_check.main() == 2
    assert capsys.readouterr().out.startswith("no CUDA GPU on this machine: nothing checked")
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--device", "cpu", "--images", "600"])
    assert gpu_check.main() == 0
    lines = capsys.readouterr().out.splitlines()
    verdicts = Counter(line.split()[0] for line in lines[:-1])
    assert verdicts == {"PASS": 6, "SKIP": 4, "INFO": 1} and lines[-1] == "every check passed"
