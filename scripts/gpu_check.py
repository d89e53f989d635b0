"""Check the GPU path on this machine's GPU: one line per check, each with a verdict.

Needs no MNIST and no network: every run trains and evaluates on random images written to a
temporary folder. On a machine without a CUDA GPU it says so and exits with status 2;
``--device cpu`` runs what the CPU can of it, to try the script itself. Once scripts/test or
scripts/run has set up .venv:

    .venv/bin/python scripts/gpu_check.py [--device cuda|cuda:N|cpu] [--images N] [--no-tests]

Verdicts: PASS and FAIL for what must hold; INFO for measurements (times, drift, whether a run
without the deterministic setting happens to repeat); SKIP for what needs CUDA. The checks:

- environment: torch, CUDA and the GPU, and whether bfloat16 autocast is used (compute
  capability 8.0 or more);
- smoke: a 2-epoch run per architecture with autocast and random affine augmentation, whose
  folder must hold a finite log, an eval.json and a model that loads back;
- syncs: one epoch per stochastic architecture under ``torch.cuda.set_sync_debug_mode("warn")``,
  counting the waits for the GPU per source line; none may come once per step;
- determinism: the same seed twice, without and with ``deterministic = true``; with it the
  weights must be equal; and a run stopped after one epoch and resumed must equal one never
  stopped;
- bf16 drift: the official checkpoints' probabilities and mutual information under bfloat16
  autocast against float32;
- parity: `zoo.evaluate` on the CPU and on the GPU (TF32 off) must agree to 1e-4;
- speed: one epoch's training time per architecture with autocast on and off, and compiled
  (``cuda_compile``) against eager;
- tests: ``pytest -m cuda``, the suite's CUDA tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

import zoo
from zoo.devices import seeded, select_device
from zoo.training import parse_recipe, train
from zoo.training import trainer as trainer_module

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURES = ("lenet", "mc_dropout_lenet", "bayesian_lenet")
OFFICIAL = ("lenet.mnist", "mc_dropout_lenet.mnist", "bayesian_lenet.mnist")
_NO_GPU_STATUS = 2


class Checks:
    """Prints one line per check and remembers whether any failed."""

    def __init__(self) -> None:
        self.failed = 0

    def report(self, verdict: str, name: str, detail: str) -> None:
        self.failed += verdict == "FAIL"
        print(f"{verdict:<5} {name:<28} {detail}", flush=True)

    def require(self, passed: bool, name: str, detail: str) -> None:
        self.report("PASS" if passed else "FAIL", name, detail)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (default cuda)")
    parser.add_argument("--images", type=int, default=12_000, help="random images, at least 600")
    parser.add_argument("--no-tests", action="store_true", help="skip pytest -m cuda")
    args = parser.parse_args()
    if args.images < 600:
        parser.error("--images must be at least 600: a run holds out a tenth and needs 4 batches")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU on this machine: nothing checked (--device cpu tries the script)")
        return _NO_GPU_STATUS
    device = select_device(args.device)
    checks = Checks()
    VALIDATION["size"] = min(500, args.images // 10)
    with tempfile.TemporaryDirectory(prefix="zoo-gpu-check-") as scratch:
        work = Path(scratch)
        data = write_random_data(work / "data", args.images)
        check_environment(checks, device)
        check_smoke_runs(checks, device, data, work)
        check_syncs(checks, device, data, work, args.images)
        check_determinism(checks, device, data, work)
        check_bf16_drift(checks, device)
        check_parity(checks, device, data)
        check_speed(checks, device, data, work)
        if device.type == "cuda" and not args.no_tests:
            check_cuda_tests(checks)
    print(f"{checks.failed} check(s) failed" if checks.failed else "every check passed")
    return 1 if checks.failed else 0


def write_random_data(root: Path, images: int) -> Path:
    """MNIST and FashionMNIST look-alikes of random pixels and labels, in IDX files, the same
    images for the train and test splits."""
    generator = torch.Generator().manual_seed(0)
    for folder, count in (("MNIST", images), ("FashionMNIST", max(1, images // 4))):
        raw = root / folder / "raw"
        raw.mkdir(parents=True)
        pixels = torch.randint(0, 256, (count, 28, 28), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, 10, (count,), dtype=torch.uint8, generator=generator)
        for prefix in ("train", "t10k"):
            write_idx(raw / f"{prefix}-images-idx3-ubyte", pixels)
            write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def write_idx(path: Path, values: torch.Tensor) -> None:
    header = bytes([0, 0, 8, values.dim()]) + b"".join(n.to_bytes(4, "big") for n in values.shape)
    path.write_bytes(header + values.numpy().tobytes())


# How many of the random images a run holds out for validation; set by main().
VALIDATION = {"size": 500}


def recipe(architecture: str, epochs: int = 2, **training: object) -> Any:
    """A small run of ``architecture`` with the official recipes' affine augmentation."""
    settings = {"epochs": epochs, "batch_size": 128, "validation_samples": 4} | training
    samples = 2 if architecture != "lenet" else 1
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    return parse_recipe(
        f'name = "check"\nseed = 1\n[model]\narchitecture = "{architecture}"\n'
        f"[data]\nvalidation_size = {VALIDATION['size']}\nmax_rotation = 10.0\nmax_scale = 0.1\n"
        f"[training]\nloss_samples = {samples}\n{lines}\n[evaluation]\nsamples = 4\n"
    )


def read_log(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


def weights_of(folder: Path) -> str:
    return json.loads((folder / "config.json").read_text())["weights_sha256"]


def check_environment(checks: Checks, device: torch.device) -> None:
    line = f"torch {torch.__version__}, zoo {zoo.__version__}, device {device}"
    if device.type == "cuda":
        capability = torch.cuda.get_device_capability(device)
        name = torch.cuda.get_device_name(device)
        line += f" ({name}, compute capability {capability[0]}.{capability[1]}, CUDA "
        line += f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})"
        amp = trainer_module._amp_dtype(recipe("lenet"), device)
        checks.report("INFO", "environment", line)
        checks.require(
            (amp is torch.bfloat16) == (capability >= (8, 0)),
            "bf16 gate",
            f"autocast {amp}; torch.cuda.is_bf16_supported() says {torch.cuda.is_bf16_supported()}",
        )
    else:
        checks.report("INFO", "environment", line)


def check_smoke_runs(checks: Checks, device: torch.device, data: Path, work: Path) -> None:
    for architecture in ARCHITECTURES:
        folder = work / f"smoke-{architecture}"
        started = time.perf_counter()
        train(recipe(architecture), folder, device=device, data_dir=data)
        log = read_log(folder)
        report = json.loads((folder / "eval.json").read_text())
        model = zoo.load(folder).to(device)
        probs = model.predict(torch.zeros(4, 28, 28, dtype=torch.uint8), 4).probs
        finite = all(torch.isfinite(torch.tensor(r["loss"])) for r in log)
        accuracy = report["metrics"]["classification"]["acc"]
        checks.require(
            finite and len(log) == 2 and bool(torch.isfinite(probs).all()) and "metrics" in report,
            f"smoke {architecture}",
            f"2 epochs, amp {log[-1]['amp']}, eval acc {accuracy:.3f} (random labels), "
            f"{time.perf_counter() - started:.1f} s in all",
        )


def check_syncs(checks: Checks, device: torch.device, data: Path, work: Path, images: int) -> None:
    """The waits for the GPU in a training epoch, per source line: the loss is read every 16
    steps and at the end of the epoch, so no line may wait once per step."""
    if device.type != "cuda":
        checks.report("SKIP", "syncs", "needs CUDA")
        return
    steps = -(-(images - VALIDATION["size"]) // 128)
    for architecture in ("mc_dropout_lenet", "bayesian_lenet"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with sync_warnings_in_epochs():
                run = recipe(architecture, epochs=1)
                train(run, work / f"syncs-{architecture}", device=device, data_dir=data)
        sites = Counter(
            f"{Path(w.filename).name}:{w.lineno}"
            for w in caught
            if "synchroniz" in str(w.message).lower()
        )
        worst = max(sites.values(), default=0)
        detail = ", ".join(f"{site} x{count}" for site, count in sites.most_common(6)) or "none"
        checks.require(
            worst <= steps // 16 + 2, f"syncs {architecture}", f"{steps} steps: {detail}"
        )


@contextlib.contextmanager
def sync_warnings_in_epochs() -> Iterator[None]:
    """CUDA's sync check set to warn within training epochs only: validation, checkpoints and
    the final evaluation read the GPU on purpose."""
    original = trainer_module._Run._train_one_epoch

    def train_one_epoch(run: Any) -> tuple[float, float, float]:
        torch.cuda.set_sync_debug_mode("warn")
        try:
            return original(run)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    trainer_module._Run._train_one_epoch = train_one_epoch  # type: ignore[method-assign]
    try:
        yield
    finally:
        trainer_module._Run._train_one_epoch = original  # type: ignore[method-assign]


def check_determinism(checks: Checks, device: torch.device, data: Path, work: Path) -> None:
    for deterministic in (False, True):
        run = recipe("bayesian_lenet", epochs=2, deterministic=deterministic)
        folders = [work / f"repeat-{deterministic}-{n}" for n in (1, 2)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for folder in folders:
                train(run, folder, device=device, data_dir=data)
        unrepeatable = {
            str(w.message).split(" does not")[0]
            for w in caught
            if "deterministic implementation" in str(w.message)
        }
        same = weights_of(folders[0]) == weights_of(folders[1])
        detail = "the same weights" if same else "the weights differ"
        if unrepeatable:
            detail += f"; no deterministic kernel for {', '.join(sorted(unrepeatable))}"
        name = f"repeat, deterministic={str(deterministic).lower()}"
        if deterministic or device.type == "cpu":
            checks.require(same and not unrepeatable, name, detail)
        else:
            checks.report("INFO", name, detail)
    run = recipe("bayesian_lenet", epochs=2, deterministic=True)
    stopped = work / "resumed"
    original = trainer_module._Run._train_one_epoch

    def stop_after_one(self: Any) -> tuple[float, float, float]:
        if self.epoch == 1:
            raise KeyboardInterrupt
        return original(self)

    trainer_module._Run._train_one_epoch = stop_after_one  # type: ignore[method-assign]
    try:
        with contextlib.suppress(KeyboardInterrupt):
            train(run, stopped, device=device, data_dir=data)
    finally:
        trainer_module._Run._train_one_epoch = original  # type: ignore[method-assign]
    train(run, stopped, device=device, data_dir=data, resume=True)
    same = weights_of(stopped) == weights_of(work / "repeat-True-1")
    checks.require(same, "resume", "equals the run never stopped" if same else "differs")


def check_bf16_drift(checks: Checks, device: torch.device) -> None:
    if device.type != "cuda":
        checks.report("SKIP", "bf16 drift", "needs CUDA")
        return
    images = torch.randint(0, 256, (2000, 28, 28), dtype=torch.uint8)
    for name in OFFICIAL:
        model = zoo.load(name).to(device)
        with seeded(0, device):
            full = model.predict(images, 16)
        with seeded(0, device), torch.autocast("cuda", dtype=torch.bfloat16):
            half = model.predict(images, 16)
        probs = (half.probs - full.probs).abs().max().item()
        information = (half.mutual_information - full.mutual_information).abs().max().item()
        agree = (half.probs.argmax(-1) == full.probs.argmax(-1)).float().mean().item()
        checks.report(
            "INFO",
            f"bf16 drift {name.split('.')[0]}",
            f"max |dp| {probs:.2e}, max |dMI| {information:.2e} nats, same class {agree:.2%}",
        )


def check_parity(checks: Checks, device: torch.device, data: Path) -> None:
    if device.type != "cuda":
        checks.report("SKIP", "cpu-gpu parity", "needs CUDA")
        return
    for name in ("lenet.mnist", "bayesian_lenet.mnist"):
        model = zoo.load(name)
        if name.startswith("bayesian"):
            model.freeze()  # the posterior means: the devices' random streams differ
        on_cpu = zoo.evaluate(model, device="cpu", data_dir=data)
        on_gpu = zoo.evaluate(model, device=device, data_dir=data)
        worst = max(
            abs(on_gpu.metrics[group][key] - value) / max(abs(value), 1e-6)
            for group, values in on_cpu.metrics.items()
            for key, value in values.items()
        )
        checks.require(worst <= 1e-4, f"cpu-gpu parity {name}", f"largest relative gap {worst:.1e}")


def check_speed(checks: Checks, device: torch.device, data: Path, work: Path) -> None:
    if device.type != "cuda":
        checks.report("SKIP", "speed", "needs CUDA")
        return
    for architecture in ARCHITECTURES:
        seconds = {}
        for amp in (True, False):
            folder = work / f"speed-{architecture}-{amp}"
            train(recipe(architecture, cuda_amp=amp), folder, device=device, data_dir=data)
            seconds[amp] = read_log(folder)[-1]["train_seconds"]
        checks.report(
            "INFO",
            f"epoch {architecture}",
            f"{seconds[True]:.2f} s with bf16 autocast, {seconds[False]:.2f} s in float32 "
            "(epoch 2, so warm)",
        )
    import torch._dynamo

    torch._dynamo.reset()
    folder = work / "compiled"
    train(
        recipe("mc_dropout_lenet", epochs=3, cuda_compile=True),
        folder,
        device=device,
        data_dir=data,
    )
    log = read_log(folder)
    eager = read_log(work / "speed-mc_dropout_lenet-True")[-1]["train_seconds"]
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    finite = all(torch.isfinite(torch.tensor(record["loss"])) for record in log)
    checks.require(
        log[-1]["compiled"] and finite,
        "compiled vs eager",
        f"epoch 3 {log[-1]['train_seconds']:.2f} s compiled ({graphs} graph(s)), epoch 2 "
        f"{eager:.2f} s eager; epoch 1 with compilation {log[0]['train_seconds']:.1f} s",
    )


def check_cuda_tests(checks: Checks) -> None:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/test_cuda.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    summary = (result.stdout.strip().splitlines() or ["no output"])[-1]
    detail = f"{summary} ({time.perf_counter() - started:.0f} s)"
    checks.require(result.returncode == 0, "pytest -m cuda", detail)
    if result.returncode:
        print(result.stdout[-4000:], result.stderr[-2000:], sep="\n")


if __name__ == "__main__":
    sys.exit(main())
