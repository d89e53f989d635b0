"""The optimiser and learning-rate schedule a recipe asks for, built from torch.optim."""

from __future__ import annotations

import torch
from torch import nn, optim
from torch.optim import lr_scheduler

from zoo.errors import RecipeError
from zoo.training.recipe import OptimizerSection, ScheduleSection

# Settings of torch's optimisers that say how a step is computed, not what it computes: they
# follow the device a run is on, also when it resumes somewhere else.
IMPLEMENTATION_SETTINGS = ("fused", "foreach")


def build_optimizer(
    model: nn.Module, section: OptimizerSection, device: torch.device | None = None
) -> optim.Optimizer:
    """AdamW or SGD over every parameter of ``model``, which is on ``device``.

    On CUDA both run fused: one kernel updates every parameter, where the default takes a
    few per parameter group. Elsewhere they take torch's default.
    """
    fused = True if device is not None and device.type == "cuda" else None
    if section.name == "sgd":
        return optim.SGD(
            model.parameters(),
            lr=section.lr,
            momentum=section.momentum,
            weight_decay=section.weight_decay,
            nesterov=section.nesterov,
            fused=fused,
        )
    return optim.AdamW(
        model.parameters(), lr=section.lr, weight_decay=section.weight_decay, fused=fused
    )


def build_schedule(
    optimizer: optim.Optimizer, section: ScheduleSection, total_steps: int, steps_per_epoch: int
) -> lr_scheduler.LRScheduler:
    """The schedule, stepped once per batch over ``total_steps`` batches; onecycle and cosine
    give the last batch the final rate. Raises `RecipeError` for a one-cycle warm-up of
    exactly one step, which torch's schedule cannot compute.

    - onecycle: warm up from lr / 25 to lr over ``warmup_fraction`` of the run, then anneal
      (cosine) to lr x ``final_lr_fraction``; momentum is left as the optimiser has it.
    - cosine: cosine from lr to lr x ``final_lr_fraction``.
    - step: multiply lr by ``gamma`` every ``step_epochs`` epochs.
    - constant: lr throughout.
    """
    base_lr = optimizer.param_groups[0]["lr"]
    if section.name == "onecycle":
        if section.warmup_fraction * total_steps == 1:  # torch divides by zero on it
            raise RecipeError(
                f"'schedule.warmup_fraction' {section.warmup_fraction!r} of the run's "
                f"{total_steps} steps is exactly one step, which the one-cycle schedule cannot "
                "warm up over: make it longer or 0"
            )
        initial_division = 25.0
        return lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=base_lr,
            total_steps=total_steps,
            pct_start=section.warmup_fraction,
            div_factor=initial_division,
            final_div_factor=1.0 / (initial_division * section.final_lr_fraction),
            cycle_momentum=False,
        )
    if section.name == "cosine":
        return lr_scheduler.CosineAnnealingLR(  # the last batch trains at the final rate
            optimizer, T_max=max(1, total_steps - 1), eta_min=base_lr * section.final_lr_fraction
        )
    if section.name == "step":
        return lr_scheduler.StepLR(
            optimizer, step_size=section.step_epochs * steps_per_epoch, gamma=section.gamma
        )
    return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
