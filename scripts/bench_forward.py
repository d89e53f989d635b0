"""Time S-sample forward passes of the stochastic LeNets, side by side with the alternatives.

For 10,000 images x 16 samples it times, in one run and on the same data:

- mc_dropout_lenet: the zoo's single batched pass (deterministic prefix shared, the second
  convolution computed once per image and summed per sample under the channel masks, masks
  drawn from uniform numbers, pooling before the ReLU); the same pass with masks drawn by
  ``bernoulli_`` as `nn.Dropout` draws them; the pass before both changes (masks by
  ``bernoulli_``, the second convolution run on every masked copy, the ReLU before the
  pooling, though in place as now); the pass without sharing the prefix; and a Python loop of
  16 single-sample passes;
- bayesian_lenet: the zoo's single batched pass (grouped-convolution weight draws, local
  reparameterization in the linear layers), a Python loop of 16 single-sample passes, and a
  batched pass with local reparameterization in the conv layers too, the alternative design.
- deep_ensemble_lenet (M = --members, 5): the zoo's batched pass over all members, the members
  run one after another, and MC dropout's pass with S samples for scale: the ensemble's M
  members should cost no more than MC dropout's S samples.

It prints each variant's median time over --repeats rounds, in which the variants take turns,
how many times slower it is than the zoo's pass, and its multiply-adds per image as torch's
FLOP counter counts them on one batch. Once scripts/test or scripts/run has set up .venv:

    .venv/bin/python scripts/bench_forward.py [--batch-size N] [--device cpu|cuda]
        [--chunk-rows N [N ...]]

``--chunk-rows`` adds, for each N, the zoo's pass computed in chunks of N image-samples (the
default per device is `zoo.models.base.ROWS_PER_CHUNK`), to choose a device's chunk size; use
a batch size of several chunks (e.g. ``--batch-size 10000``) so that the chunk decides.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

import zoo
from zoo.models import BayesianLeNet, DeepEnsembleLeNet, MCDropoutLeNet, ZooModel

lenet_module = sys.modules["zoo.models.lenet"]

Forward = Callable[[Tensor], Tensor]


def mc_dropout_variants(model: MCDropoutLeNet, samples: int) -> dict[str, Forward]:
    def unshared(images: Tensor) -> Tensor:
        repeated = model.prepare_input(images).repeat_interleave(samples, dim=0)
        return model.layers(repeated).view(images.shape[0], samples, -1)

    return {
        "zoo: one pass, conv2 factorised": lambda images: model(images, samples),
        "the same, masks by bernoulli_": _with(
            lenet_module, model, samples, dropout_mask=_bernoulli_mask
        ),
        "the pass before: conv2 on each sample": _with(
            lenet_module,
            model,
            samples,
            dropout_mask=_bernoulli_mask,
            channel_dropped_conv=_conv_of_copies,
            _pooled_before_relu=list,
        ),
        "one pass, prefix not shared": unshared,
        f"python loop of {samples} passes": single_sample_loop(model, samples),
    }


def _with(module: ModuleType, model: ZooModel, samples: int, **replacements: object) -> Forward:
    """The zoo's pass with names of ``module`` replaced, to time what the originals save."""

    def forward(images: Tensor) -> Tensor:
        originals = {name: getattr(module, name) for name in replacements}
        for name, replacement in replacements.items():
            setattr(module, name, replacement)
        try:
            return model(images, samples)
        finally:
            for name, original in originals.items():
                setattr(module, name, original)

    return forward


def _bernoulli_mask(shape: tuple[int, ...], rate: float, like: Tensor) -> Tensor:
    """Dropout masks drawn as `nn.Dropout` draws them, by ``bernoulli_``."""
    keep = 1.0 - rate
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(keep).div_(keep)


def _conv_of_copies(shared: Tensor, masks: Tensor, conv: torch.nn.Conv2d) -> Tensor:
    """conv2 run on every masked copy, as before its factorisation."""
    count, samples, channels = masks.shape
    repeated = lenet_module.repeat_for_samples(shared, samples)
    return conv(repeated * masks.reshape(count * samples, channels, 1, 1))


def bayesian_variants(model: BayesianLeNet, samples: int) -> dict[str, Forward]:
    return {
        "zoo: one pass, grouped conv draws": lambda images: model(images, samples),
        f"python loop of {samples} passes": single_sample_loop(model, samples),
        "one pass, local reparam. in convs": lambda images: _all_local_reparam(
            model, images, samples
        ),
    }


def ensemble_variants(
    members: list[torch.nn.Module], mc_dropout: MCDropoutLeNet, samples: int
) -> dict[str, Forward]:
    """The deep ensemble's batched pass, its members run one after another, and, for scale,
    MC dropout with S samples: the ensemble's M members should cost no more than that."""
    device = next(mc_dropout.parameters()).device
    ensemble = DeepEnsembleLeNet.from_members(members).eval().to(device)

    def loop(images: Tensor) -> Tensor:
        return torch.stack([member(images) for member in members], dim=1)

    return {
        f"zoo: one pass, {len(members)} members batched": lambda images: ensemble(images),
        f"python loop of {len(members)} member passes": loop,
        f"mc_dropout_lenet, {samples} samples (zoo)": lambda images: mc_dropout(images, samples),
    }


def single_sample_loop(model: torch.nn.Module, samples: int) -> Forward:
    """The same S samples as S separate single-sample passes in a Python loop."""

    def loop(images: Tensor) -> Tensor:
        return torch.cat([model(images, samples=1) for _ in range(samples)], dim=1)

    return loop


def _all_local_reparam(model: BayesianLeNet, images: Tensor, samples: int) -> Tensor:
    """The alternative design: sample every conv output instead of the conv weights.

    conv1's output mean and variance are computed once per image and the S noise draws are
    taken from them; conv2 then runs on the B*S sampled maps.
    """
    hidden = model.prepare_input(images)
    for index, conv in enumerate((model.conv1, model.conv2)):
        mean = F.conv2d(hidden, conv.weight_mu, conv.bias_mu)
        variance = F.conv2d(hidden.square(), conv.weight_sigma.square(), conv.bias_sigma.square())
        if index == 0:
            mean = mean.repeat_interleave(samples, dim=0)
            variance = variance.repeat_interleave(samples, dim=0)
        sampled = mean + variance.sqrt() * torch.randn_like(mean)
        hidden = F.max_pool2d(sampled, 2).relu()
    hidden = model.fc2(model.fc1(hidden.flatten(1)).relu()).relu()
    return model.fc3(hidden).view(images.shape[0], samples, -1)


def multiply_adds(forward: Forward, images: Tensor) -> float:
    """Multiply-adds per image of ``forward``, counted by torch's FLOP counter (2 FLOPs each)
    over the convolutions and matrix products the pass really runs."""
    with FlopCounterMode(display=False) as counter:
        forward(images)
    return counter.get_total_flops() / 2 / len(images)


def time_forward(forward: Forward, images: Tensor, batch_size: int, device: str) -> float:
    """Seconds to run ``forward`` over all ``images`` in batches."""
    forward(images[:batch_size])  # warm-up: allocator, kernels, lazy initialisation
    _synchronize(device)
    start = time.perf_counter()
    for first in range(0, len(images), batch_size):
        forward(images[first : first + batch_size])
    _synchronize(device)
    return time.perf_counter() - start


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunk-rows", type=int, nargs="*", default=[])
    parser.add_argument("--members", type=int, default=5, help="M of the deep ensemble")
    args = parser.parse_args()

    torch.manual_seed(0)
    images = torch.randint(0, 256, (args.images, 28, 28), dtype=torch.uint8, device=args.device)
    mc_dropout = zoo.create_model("mc_dropout_lenet").eval().to(args.device)
    bayesian = zoo.create_model("bayesian_lenet").eval().to(args.device)
    members = [zoo.create_model("lenet").eval().to(args.device) for _ in range(args.members)]
    suites = {
        "mc_dropout_lenet": mc_dropout_variants(mc_dropout, args.samples),
        "bayesian_lenet": bayesian_variants(bayesian, args.samples),
        "deep_ensemble": ensemble_variants(members, mc_dropout, args.samples),
    }
    chunked = {"mc_dropout_lenet": mc_dropout, "bayesian_lenet": bayesian}
    for name, model in chunked.items():
        variants = suites[name]
        for rows in args.chunk_rows:
            variants[f"zoo, chunks of {rows:,} rows"] = in_chunks_of(model, args.samples, rows)
    print(
        f"{args.images:,} images x {args.samples} samples, batch {args.batch_size}, "
        f"{args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"median of {args.repeats} runs"
    )
    print(f"{'model':<17} {'variant':<38} {'seconds':>8} {'vs zoo':>8} {'MACs/image':>11}")
    with torch.inference_mode():
        for name, variants in suites.items():
            seconds = median_seconds(variants, images, args.batch_size, args.device, args.repeats)
            zoo_seconds = next(iter(seconds.values()))
            for label, value in seconds.items():
                macs = multiply_adds(variants[label], images[: args.batch_size])
                print(
                    f"{name:<17} {label:<38} {value:8.2f} {value / zoo_seconds:7.2f}x "
                    f"{macs:>11,.0f}"
                )


def in_chunks_of(model: torch.nn.Module, samples: int, rows: int) -> Forward:
    """The zoo's pass, computed in chunks of ``rows`` image-samples on the model's device."""
    device_type = next(model.parameters()).device.type

    def forward(images: Tensor) -> Tensor:
        default = zoo.models.base.ROWS_PER_CHUNK[device_type]
        zoo.models.base.ROWS_PER_CHUNK[device_type] = rows
        try:
            return model(images, samples)
        finally:
            zoo.models.base.ROWS_PER_CHUNK[device_type] = default

    return forward


def median_seconds(
    variants: dict[str, Forward], images: Tensor, batch_size: int, device: str, repeats: int
) -> dict[str, float]:
    """Median time of each variant; the variants take turns, so drifting load hits all alike."""
    runs: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(repeats):
        for label, forward in variants.items():
            runs[label].append(time_forward(forward, images, batch_size, device))
    return {label: statistics.median(times) for label, times in runs.items()}


if __name__ == "__main__":
    main()
