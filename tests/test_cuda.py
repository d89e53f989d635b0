"""The CUDA path on a real GPU: training with autocast, no wait for the GPU within a step,
evaluation that matches the CPU's, chunking that never changes results, and deterministic
runs that repeat. Skipped where there is no CUDA GPU; ``pytest -m cuda`` runs these alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import zoo
from zoo.devices import seeded
from zoo.evaluation import full_float32_precision
from zoo.models import base
from zoo.training import parse_recipe, train
from zoo.training import trainer as trainer_module

from .test_gpu_path import affine_recipe
from .test_training import interrupt_after_epochs, weights_sha256

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
]


@pytest.fixture
def gpu() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())


@pytest.mark.parametrize("architecture", ["lenet", "mc_dropout_lenet", "bayesian_lenet"])
def test_a_cuda_run_writes_a_model_that_loads(
    architecture: str, gpu: torch.device, tiny_data_root: Path, tmp_path: Path
) -> None:
    recipe = parse_recipe(affine_recipe(architecture, epochs=2))
    train(recipe, tmp_path / "run", device=gpu, data_dir=tiny_data_root)
    log = [
        json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    ]
    native_bf16 = torch.cuda.get_device_capability(gpu) >= (8, 0)
    assert {record["amp"] for record in log} == {"bfloat16" if native_bf16 else None}
    assert all(record["device"].startswith(f"cuda:{gpu.index} ") for record in log)
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["provenance"]["device"].startswith("cuda")
    model = zoo.load(tmp_path / "run").to(gpu)
    assert torch.isfinite(model.predict(torch.zeros(3, 28, 28, dtype=torch.uint8), 4).probs).all()


@pytest.mark.parametrize("architecture", ["mc_dropout_lenet", "bayesian_lenet"])
def test_a_training_step_never_waits_for_the_gpu(
    architecture: str,
    gpu: torch.device,
    tiny_data_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Augmentation, forward, backward and optimiser step run with CUDA's sync check set to
    raise on any wait for the GPU."""
    for name in ("_augment", "_step"):
        original = getattr(trainer_module._Run, name)

        def strict(run: trainer_module._Run, *args: Any, _original: Any = original) -> Any:
            torch.cuda.set_sync_debug_mode("error")
            try:
                return _original(run, *args)
            finally:
                torch.cuda.set_sync_debug_mode("default")

        monkeypatch.setattr(trainer_module._Run, name, strict)
    recipe = parse_recipe(affine_recipe(architecture, epochs=1, batch_size=4))
    train(recipe, tmp_path / "run", device=gpu, data_dir=tiny_data_root)


def test_cuda_evaluation_matches_the_cpu(gpu: torch.device, tiny_data_root: Path) -> None:
    """TF32 is off inside evaluate, so the deterministic models agree to float rounding."""
    for name in ("lenet.mnist", "bayesian_lenet.mnist"):
        model = zoo.load(name)
        if name.startswith("bayesian"):
            model.freeze()
        on_cpu = zoo.evaluate(model, device="cpu", data_dir=tiny_data_root)
        on_gpu = zoo.evaluate(model, device=gpu, data_dir=tiny_data_root)
        assert on_gpu.provenance["float32_precision"]["cudnn_conv"] == "ieee"
        for group, values in on_cpu.metrics.items():
            for key, value in values.items():
                assert on_gpu.metrics[group][key] == pytest.approx(value, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("name", ["mc_dropout_lenet", "bayesian_lenet"])
def test_the_chunk_size_never_changes_the_samples_on_cuda(
    name: str, gpu: torch.device, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = zoo.create_model(name).to(gpu)
    batch = torch.randint(0, 256, (700, 28, 28), dtype=torch.uint8)
    outputs = []
    for rows in (2048, 8192, 65536):
        monkeypatch.setitem(base.ROWS_PER_CHUNK, "cuda", rows)
        with seeded(3, gpu), full_float32_precision():  # TF32 would round each chunk its way
            outputs.append(model(batch, 16))
    for output in outputs[1:]:
        torch.testing.assert_close(output, outputs[0], rtol=1e-4, atol=1e-4)


def test_deterministic_runs_repeat_and_resume_bit_for_bit(
    gpu: torch.device, tiny_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Warnings are errors here: an op without a deterministic kernel fails the test."""
    recipe = parse_recipe(affine_recipe("bayesian_lenet", epochs=3, deterministic=True))
    for run in ("a", "b"):
        train(recipe, tmp_path / run, device=gpu, data_dir=tiny_data_root)
    with monkeypatch.context() as patch:
        interrupt_after_epochs(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            train(recipe, tmp_path / "resumed", device=gpu, data_dir=tiny_data_root)
    train(recipe, tmp_path / "resumed", device=gpu, data_dir=tiny_data_root, resume=True)
    assert weights_sha256(tmp_path / "a") == weights_sha256(tmp_path / "b")
    assert weights_sha256(tmp_path / "resumed") == weights_sha256(tmp_path / "a")
