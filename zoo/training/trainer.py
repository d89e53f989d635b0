"""`train`: run a recipe and write a finished model folder.

The folder ends up holding:

- ``model.safetensors`` and ``config.json``: the trained model, as ``save_pretrained`` writes it;
- ``train_log.jsonl``: one JSON line per epoch;
- ``recipe.toml``: the recipe as run, every default and command-line override filled in;
- ``eval.json``: the final `zoo.evaluate` report on the test set.

A deep ensemble (a model with `IndependentMembers`) trains its M members in the same run, all
in each step, and apart: member m starts, orders its batches and augments them from its own
seed, `member_seed` (seed, m), just as a LeNet trained alone with that seed would. A
laplace_lenet trains as a LeNet, then gets its last-layer posterior (`zoo.laplace`).

Started by torchrun, the run is shared by its processes, as the recipe's
``training.distribute`` says (see `zoo.training.distributed`); rank 0 alone writes.

While it runs, ``training_state.safetensors`` is rewritten after every epoch, so that a killed
run goes on with ``resume=True``; on the CPU the result is then bit-identical to that of a run
that was never stopped. The checkpoint is removed once the model is written.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from zoo.atomic import atomic_write_bytes
from zoo.data import load_dataset
from zoo.devices import (
    derived_seed,
    describe_device,
    describe_hardware,
    deterministic_algorithms,
    seeded,
    select_device,
)
from zoo.errors import (
    RecipeError,
    TrainingDivergedError,
    TrainingProcessError,
    TrainingStateError,
    ZooWarning,
)
from zoo.evaluation import evaluate
from zoo.factory import create_model
from zoo.files import is_folder
from zoo.laplace import fit_posterior
from zoo.layers.bayesian import has_bayesian_layers, kl_divergence
from zoo.locks import FolderInUseError, RunLock
from zoo.models.base import IndependentMembers, ZooModel
from zoo.models.laplace_lenet import LaplaceLeNet
from zoo.preprocessing import normalise
from zoo.pretrained import (
    CONFIG_NAME,
    EVAL_NAME,
    RECIPE_NAME,
    RECORD_NAMES,
    WEIGHTS_NAME,
    folder_to_write,
)
from zoo.registry import registered_class
from zoo.text import first_line, shown
from zoo.training.augment import random_affine, random_shift
from zoo.training.checkpoint import (
    CHECKPOINT_NAME,
    TrainingState,
    load_checkpoint,
    restore_rng_states,
    rng_states,
    save_checkpoint,
)
from zoo.training.distributed import (
    World,
    batch_share,
    check_batch_size,
    check_members,
    data_parallel,
    from_rank,
    from_rank_zero,
    join,
    largest,
    leave,
    lost_contact,
    own_share,
    rank_epoch_seed,
    shares,
    summed,
    wait_for_all,
    world_from_environment,
)
from zoo.training.log import log_problem, write_log
from zoo.training.optim import IMPLEMENTATION_SETTINGS, build_optimizer, build_schedule
from zoo.training.recipe import Recipe, parse_recipe, read_recipe

OUTPUT_NAMES = (WEIGHTS_NAME, CONFIG_NAME, *RECORD_NAMES, CHECKPOINT_NAME)
LOCK_NAME = ".zoo-train.lock"  # held while a run trains into the folder (see zoo.locks)
# Steps between reads of the loss on the host: the divergence check and the progress bar wait
# for the device then, and only then.
_READ_EVERY_STEPS = 16


def member_seed(seed: int, member: int) -> int:
    """The seed of member ``member`` of a deep ensemble trained with the recipe seed ``seed``:
    63 bits of a SHA-256 of both, so that no member repeats a run with a small seed (member 0
    of a seed-0 ensemble is not the seed-0 LeNet) and members of different seeds never meet."""
    return derived_seed(f"uncertainty-zoo ensemble member {member} of seed {seed}")


@dataclass(frozen=True)
class _Stream:
    """The generators one trained network draws its batch order and augmentation from; for
    the augmentation, None is the device's default generator, which the run's seed fixes."""

    batch_order: torch.Generator
    augmentation: torch.Generator | None = None


@dataclass(frozen=True)
class TrainingData:
    """The training and validation images, uint8 on the training device."""

    train_images: Tensor
    train_targets: Tensor
    validation_images: Tensor
    validation_targets: Tensor


def train(
    recipe: Recipe | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    device: str | torch.device = "auto",
    resume: bool = False,
    allow_recipe_changes: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> ZooModel:
    """Train ``recipe`` (a `Recipe`, or the path of a recipe file) into the folder ``out``;
    return the trained model, in eval mode.

    The caller's random state is left as it was. While it runs, the run holds a lock on
    ``out``, so a second run into the same folder fails at once instead of overwriting it.

    Pass ``resume=True`` to go on from the checkpoint a killed run left in ``out``. The recipe
    must be the one that run used, but for its [evaluation] settings, which only the final
    evaluation reads (a laplace_lenet's posterior is fitted with them too, so there they must
    agree as well). With ``allow_recipe_changes=True`` too, it may also differ in its
    optimiser's settings, its schedule and its [training] settings (after a diverged run, say):
    the optimiser's state is kept, the new settings apply from the next step, and the learning
    rate is the new schedule's at the step reached. Its model, data, seed and optimiser stay.

    Raises:
        TrainingStateError: ``out`` already holds a run (without ``resume``), is in use by
            another run, holds no checkpoint to resume, or one made with another recipe.
        TrainingDivergedError: the loss became NaN or infinite; the last checkpoint is kept.
        DatasetError: the training data cannot be read or downloaded.
        RecipeError: the recipe cannot be read, or its held-out validation images leave less
            than one batch to train on.
        DeviceError: the device is unknown or not on this machine.
        TrainingProcessError: under torchrun, another process failed or was stopped.
    """
    if not isinstance(recipe, Recipe):
        recipe = read_recipe(recipe)
    recipe = recipe.with_default_distribution()
    world = world_from_environment()
    check_distributable(recipe, world.size)
    world, target = join(world, select_device(device))
    try:
        return _train_in(
            recipe, out, world, target, resume, allow_recipe_changes, data_dir, progress
        )
    except RuntimeError as error:
        if not lost_contact(error, world):
            raise
        reason = first_line(error)
        raise TrainingProcessError(
            f"lost contact with the other processes, one of which must have failed or been "
            f"stopped ({reason})"
        ) from None
    finally:
        leave(world)


def _train_in(
    recipe: Recipe,
    out: str | os.PathLike[str],
    world: World,
    target: torch.device,
    resume: bool,
    allow_recipe_changes: bool,
    data_dir: str | os.PathLike[str] | None,
    progress: bool,
) -> ZooModel:
    """`train` in this process's place in ``world``: rank 0 holds the folder and writes it."""
    folder = folder_to_write(out)
    created = world.writes and not is_folder(folder)
    if world.writes:
        _create(folder)
    lock = RunLock(folder / LOCK_NAME)
    try:
        if world.writes:
            _acquire(lock, folder)
        state = None
        if resume:
            state = load_checkpoint(folder / CHECKPOINT_NAME)
            if recipe.training.distribute == "batches":
                _check_world_size(state.log, world, folder)
        elif world.writes:
            _check_fresh(folder)
        wait_for_all(world)  # the folder is checked and held before anyone trains
        # Each machine's local rank 0 reads (and downloads) the data before the others.
        if world.local_rank:
            wait_for_all(world)
        data = _load_training_data(recipe, target, data_dir)
        if not world.local_rank:
            wait_for_all(world)
        recipe = recipe.with_default_kl_weight(len(data.train_targets))
        changes = [] if state is None else _changes_to_resume_with(recipe, state, folder)
        if changes and not allow_recipe_changes:
            raise TrainingStateError(
                f"the run in {folder} used another recipe (it differs in {', '.join(changes)}); "
                "resume with the same recipe and options, pass --allow-recipe-changes to go "
                "on with this one, or start a new --out folder"
            )
        with seeded(recipe.seed, target), deterministic_algorithms(recipe.training.deterministic):
            run = _Run(recipe, data, target, folder, progress and world.writes, world)
            if state is not None:
                run.restore(state, changes)
            run.distribute()
            run.fit()
            model = run.final_model()
            if isinstance(model, LaplaceLeNet) and world.writes:
                _fit_posterior(model, recipe, data, target, progress)
        if world.writes:  # torchrun waits for every rank; the others need not wait here
            _write_results(model, recipe, run.log, folder, target, data_dir, progress)
    finally:
        lock.release()
        if created:
            _remove_if_empty(folder)
    return model


def check_distributable(recipe: Recipe, processes: int) -> None:
    """Refuse, before anything starts, a run ``processes`` processes cannot share, as the
    recipe's ``training.distribute`` says: a batch that does not divide, or fewer members
    than processes.

    Raises:
        RecipeError: they cannot.
    """
    recipe = recipe.with_default_distribution()
    world, model = World(0, processes), recipe.model_skeleton()
    distribute = recipe.training.distribute
    if distribute == "batches":
        check_batch_size(recipe.training.batch_size, world)
    elif distribute == "members" and isinstance(model, IndependentMembers):
        check_members(model.members, world)
    else:  # a Recipe built in code, unchecked
        raise RecipeError(
            f"training.distribute {shown(distribute)} does not apply to "
            f'{recipe.model.architecture}; use "batches"'
        )


def _check_world_size(log: list[dict[str, Any]], world: World, folder: Path) -> None:
    """Refuse to resume a run that shares its batches on another number of processes: each
    takes another share of every batch and draws other random numbers, so the run would not
    be the one it was. (A run that spreads a deep ensemble's members over the processes is
    the same run on any number of them.)"""
    trained_on = log[-1].get("world_size", 1) if log and isinstance(log[-1], dict) else None
    if trained_on is not None and trained_on != world.size:
        raise TrainingStateError(
            f"the run in {folder} trained on {trained_on} process(es), not {world.size}; "
            f"resume it with {trained_on}, or start a new --out folder"
        )


def _fit_posterior(
    model: LaplaceLeNet, recipe: Recipe, data: TrainingData, device: torch.device, progress: bool
) -> None:
    """Fit the last-layer posterior of a trained `LaplaceLeNet`: its curvature on the training
    images, its prior precision on the held-out ones, sampled as the final evaluation samples."""
    fit = fit_posterior(
        model,
        data.train_images,
        data.validation_images,
        data.validation_targets,
        training_labels=data.train_targets,
        samples=recipe.evaluation.samples,
        seed=recipe.evaluation.seed,
        device=device,
    )
    if progress:
        print(
            f"last-layer Laplace: prior precision {fit.prior_precision:.4g} (held-out NLL "
            f"{fit.held_out_nll:.4f}, MAP {fit.map_held_out_nll:.4f}; the marginal likelihood "
            f"would pick {fit.evidence_prior_precision:.4g})",
            file=sys.stderr,
        )


def _check_fresh(folder: Path) -> None:
    taken = [name for name in OUTPUT_NAMES if (folder / name).exists()]
    if taken:
        raise TrainingStateError(
            f"{folder} already holds a training run ({', '.join(taken)}); pass --resume to go "
            "on with it, or choose another --out folder"
        )


def _create(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TrainingStateError(f"cannot create {folder}: {error.strerror or error}") from None


def _acquire(lock: RunLock, folder: Path) -> None:
    """Take the run's hold on ``folder``, or raise `TrainingStateError` naming the process that
    has it."""
    try:
        lock.acquire()
    except FolderInUseError as error:
        raise TrainingStateError(
            f"{folder} is in use by another zoo train ({error.holder}); wait for it to end, or "
            "choose another --out folder"
        ) from None
    except OSError as error:
        raise TrainingStateError(f"cannot lock {folder}: {error.strerror or error}") from None


def _remove_if_empty(folder: Path) -> None:
    """Take back a folder this run created and failed to write anything into."""
    with contextlib.suppress(OSError):
        folder.rmdir()


def _changes_to_resume_with(recipe: Recipe, state: TrainingState, folder: Path) -> list[str]:
    """The settings in which ``recipe`` differs from the one the checkpointed run used, but
    for the evaluation's; refuses those a run cannot change midway."""
    started_with = parse_recipe(state.recipe_toml, str(folder / CHECKPOINT_NAME))
    started_with = started_with.with_default_distribution()  # left out by older runs
    # A laplace_lenet's posterior is fitted with the evaluation's samples and seed.
    model_class = registered_class(recipe.model.architecture)
    fitted_by_evaluation = model_class is not None and issubclass(model_class, LaplaceLeNet)
    changes = [
        key
        for key in recipe.differences(started_with)
        if not key.startswith("evaluation.") or fitted_by_evaluation
    ]
    fixed = [key for key in changes if key in _FIXED_KEYS or key.startswith(_FIXED_SECTIONS)]
    if fixed:
        raise TrainingStateError(
            f"the run in {folder} used another recipe (it differs in {', '.join(fixed)}, which "
            "a run cannot change midway); resume with the run's own, or start a new --out folder"
        )
    if changes and recipe.training.epochs <= state.epoch:
        raise TrainingStateError(
            f"the run in {folder} has trained {state.epoch} epochs already; the recipe's "
            f"training.epochs, {recipe.training.epochs}, leaves none to go on with"
        )
    return changes


# What resuming with another recipe may not change: what the weights and the data are.
_FIXED_KEYS = ("seed", "optimizer.name")
_FIXED_SECTIONS = ("model.", "data.")


def _load_training_data(
    recipe: Recipe, device: torch.device, data_dir: str | os.PathLike[str] | None
) -> TrainingData:
    """The training split, its last ``validation_size`` images held out for validation."""
    split = load_dataset(recipe.data.dataset, "train", data_dir)
    cut = len(split) - recipe.data.validation_size
    if cut < recipe.training.batch_size:
        raise RecipeError(
            f"{recipe.data.dataset} has {len(split)} training images; after holding out "
            f"{recipe.data.validation_size} for validation, fewer than one batch is left"
        )
    images, targets = split.images.to(device), split.targets.to(device)
    return TrainingData(images[:cut], targets[:cut], images[cut:], targets[cut:])


class _Run:
    """The model, optimiser, schedule and bookkeeping of one training run."""

    def __init__(
        self,
        recipe: Recipe,
        data: TrainingData,
        device: torch.device,
        folder: Path,
        progress: bool,
        world: World,
    ) -> None:
        self.recipe, self.data, self.device, self.folder = recipe, data, device, folder
        self.progress, self.world = progress, world
        self.model = create_model(recipe.model.architecture, **recipe.model.kwargs).to(device)
        self.bayesian = has_bayesian_layers(self.model)
        self.members = isinstance(self.model, IndependentMembers)
        self.streams = (
            self._members_streams() if self.members else [_Stream(_batch_order(recipe.seed))]
        )
        # Several processes share every batch, or each trains its own run of members whole.
        self.distribution = recipe.training.distribute or "batches"
        self.shares_batches = world.distributed and self.distribution == "batches"
        self.own_members = slice(None)
        if world.distributed and self.distribution == "members":
            own = own_share(len(self.streams), world)
            self.own_members = slice(own.start, own.stop)
        # Compiled runs have static shapes: the last partial batch is dropped, on every device.
        self.drop_last = recipe.training.cuda_compile
        steps_per_epoch = _steps_per_epoch(
            len(data.train_targets),
            recipe.training.batch_size,
            self.drop_last,
            world.size if self.shares_batches else 1,
        )
        self.steps_per_epoch = steps_per_epoch
        self.optimizer = build_optimizer(self.model, recipe.optimizer, device)
        self.schedule = build_schedule(
            self.optimizer,
            recipe.schedule,
            steps_per_epoch * recipe.training.epochs,
            steps_per_epoch,
        )
        self.changes: list[str] = []  # recipe keys a resumed run changed, for its next log line
        self.amp_dtype = _amp_dtype(recipe, device)
        # What a step runs, which `distribute` wraps: the model, or its members' pass.
        self.forward: torch.nn.Module = _MembersPass(self.model) if self.members else self.model
        self.compiled = recipe.training.cuda_compile and device.type == "cuda" and not self.members
        self.setup = self._describe_setup()  # the same for every epoch: read the machine once
        self.epoch = 0
        self.log: list[dict[str, Any]] = []
        self.best_weights: dict[str, Tensor] | None = None
        self.best_nll: float | None = None
        self.epochs_since_best = 0
        self.global_rows = 0  # the images of the step's whole batch, over every rank

    def distribute(self) -> None:
        """Wrap the model for training: in ``DistributedDataParallel`` when several ranks train
        (which gives every rank rank 0's weights, restored ones included, and averages the
        gradients, or sums them where each rank trains its own members; no buffer changes in
        training, so none is sent), then compiled where the recipe asks. Ranks that resumed
        from different epochs are refused."""
        if self.world.distributed:
            epochs = torch.tensor([self.epoch, -self.epoch], device=self.device)
            first, negated_last = largest(epochs, self.world).tolist()
            if first != -negated_last:
                raise TrainingStateError(
                    f"the ranks resumed from different epochs ({-negated_last} to {first}): "
                    f"every machine must see the same {self.folder}"
                )
            self.forward = data_parallel(self.forward, summing=self.distribution == "members")
        if self.compiled:
            self.forward = torch.compile(self.forward, dynamic=False)

    def restore(self, state: TrainingState, changes: list[str]) -> None:
        """Continue from ``state``, exactly where the interrupted run stood; with ``changes``
        (recipe keys), under this run's optimiser settings and schedule from there on."""
        try:
            _check_state_like(state.optimizer, self.optimizer.state_dict(), "the optimiser's")
            _take_implementation_settings(state.optimizer, self.optimizer)
            _check_log(state.log, state.epoch)
            self.model.load_state_dict(state.weights, strict=True)
            if changes:
                self._restore_under_new_settings(state)
            else:
                _check_state_like(state.scheduler, self.schedule.state_dict(), "the schedule's")
                self.optimizer.load_state_dict(state.optimizer)
                self.schedule.load_state_dict(state.scheduler)
            if self.schedule.last_epoch != state.epoch * self.steps_per_epoch:
                raise ValueError(f"its schedule is not at the end of epoch {state.epoch}")
            # Several ranks draw afresh each epoch, and the log names rank 0's device only.
            same_device = self.world.distributed or _resumed_on(state.log, self.setup["device"])
            if not restore_rng_states(state.rng, self._generators(), self.device):
                same_device = False
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
            raise TrainingStateError(
                f"the checkpoint in {self.folder} does not fit this run ({error}); start a new "
                "--out folder"
            ) from None
        self.epoch, self.log = state.epoch, state.log
        self.best_weights, self.best_nll = state.best_weights, state.best_nll
        self.epochs_since_best = state.epochs_since_best
        self.changes = changes
        if not same_device:
            last = state.log[-1]["device"] if state.log else "another device"
            warnings.warn(
                f"the run trained on {last} and goes on on {self.setup['device']}: its result "
                "will not be the one an uninterrupted run gives (the devices draw other random "
                "numbers and round differently)",
                ZooWarning,
                stacklevel=2,
            )

    def _restore_under_new_settings(self, state: TrainingState) -> None:
        """The optimiser's state (its moments) from ``state``; its settings and learning rate
        from this run's recipe, with the schedule moved on to the step the run reached."""
        settings = [
            {key: value for key, value in group.items() if key != "params"}
            for group in self.optimizer.param_groups
        ]
        self.optimizer.load_state_dict(state.optimizer)
        for group, new in zip(self.optimizer.param_groups, settings, strict=True):
            group.update(new)
        with warnings.catch_warnings():  # stepping the schedule alone is the point here
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            for _ in range(state.epoch * self.steps_per_epoch):
                self.schedule.step()

    def _members_streams(self) -> list[_Stream]:
        """Start each member from its own seed, and give it its own streams: the batch order
        of a run with that seed, and the augmentation the device's generator would draw in
        that run (on the CPU, after the member's initial weights)."""
        assert isinstance(self.model, IndependentMembers)
        streams = []
        for member in range(self.model.members):
            seed = member_seed(self.recipe.seed, member)
            augmentation = torch.Generator(self.device)
            with seeded(seed):  # the CPU's generator, as building a model alone draws it
                self.model.reset_member(member)
                if self.device.type == "cpu":
                    augmentation.set_state(torch.get_rng_state())
            if self.device.type != "cpu":
                augmentation.manual_seed(seed)
            streams.append(_Stream(_batch_order(seed), augmentation))
        return streams

    def _generators(self) -> dict[str, torch.Generator]:
        """The run's own generators, by the names its checkpoint keeps them under."""
        if not self.members:
            return {"batch_order": self.streams[0].batch_order}
        generators = {}
        for member, stream in enumerate(self.streams):
            assert stream.augmentation is not None
            generators[f"member{member}/batch_order"] = stream.batch_order
            generators[f"member{member}/augmentation"] = stream.augmentation
        return generators

    def fit(self) -> None:
        training = self.recipe.training
        while self.epoch < training.epochs and not self._stopped_early():
            started = time.perf_counter()
            if self.shares_batches:
                self._reseed_for_epoch()
            loss, accuracy, kl = self._train_one_epoch()
            self._stop_if_weights_diverged()
            if self.world.distributed and not self.shares_batches:
                self._share_member_streams()
            train_seconds = time.perf_counter() - started
            record = {
                "epoch": self.epoch + 1,
                "loss": loss,
                "accuracy": accuracy,
                **({"kl": kl} if self.bayesian else {}),
                "lr": self.optimizer.param_groups[0]["lr"],
                **self._validate(),
            }
            record["seconds"] = time.perf_counter() - started
            record["train_seconds"] = train_seconds
            record["elapsed_seconds"] = record["seconds"] + (
                self.log[-1]["elapsed_seconds"] if self.log else 0.0
            )
            record |= self.setup
            if self.changes:
                record["recipe_changes"], self.changes = self.changes, []
            self.epoch += 1
            self.log.append(record)
            if self.world.writes:
                self._save_checkpoint()
                write_log(self.log, self.folder)
            if self.progress:
                tqdm.write(_format_record(record, training.epochs), file=sys.stderr)

    def _reseed_for_epoch(self) -> None:
        """Give this rank its own random numbers for the epoch, drawn afresh from the seed,
        its rank and the epoch: dropout masks, weight noise and augmentation, a deep
        ensemble's per member."""
        seed, rank = self.recipe.seed, self.world.rank
        torch.manual_seed(rank_epoch_seed(seed, rank, self.epoch))
        for member, stream in enumerate(self.streams):
            if stream.augmentation is not None:
                stream.augmentation.manual_seed(rank_epoch_seed(seed, rank, self.epoch, member))

    def _share_member_streams(self) -> None:
        """Give every rank each member's augmentation stream as the rank training it left it,
        so that rank 0's checkpoint holds every member's and a resumed run draws on."""
        for owner, members in enumerate(shares(len(self.streams), self.world.size)):
            for member in members:
                stream = self.streams[member].augmentation
                assert stream is not None  # every member has its own
                state = stream.get_state().to(self.device)  # NCCL sends device tensors only
                stream.set_state(from_rank(state, self.world, owner).cpu())

    def _stopped_early(self) -> bool:
        patience = self.recipe.training.patience
        return patience > 0 and self.epochs_since_best >= patience

    def _train_one_epoch(self) -> tuple[float, float, float]:
        recipe = self.recipe
        self.model.train()
        images = len(self.data.train_targets)
        orders = [torch.randperm(images, generator=stream.batch_order) for stream in self.streams]
        # (N, b) indices per step: a row per stream (one, or one per member)
        batches = torch.stack(orders).to(self.device).split(recipe.training.batch_size, dim=1)
        if self.drop_last and batches[-1].shape[1] < recipe.training.batch_size:
            batches = batches[:-1]
        if self.shares_batches and batches[-1].shape[1] < self.world.size:
            batches = batches[:-1]  # a rank's share would be empty
        trained = sum(indices.numel() for indices in batches)  # image-rows, of every member
        own_streams = self.streams[self.own_members]
        # The loss, correct count and KL summed so far, and the first step whose loss was not
        # finite (see `_bad_step_key`): float32 on the device (Apple's MPS has no float64; the
        # count is exact below 2^24), read on the host every few steps only.
        sums = torch.zeros(3, device=self.device)
        first_bad = torch.zeros((), device=self.device)
        bar = tqdm(
            batches,
            desc=f"epoch {self.epoch + 1}/{recipe.training.epochs}",
            disable=not self.progress,
            leave=False,
            unit="batch",
        )
        with self.model.inputs_known_finite():  # augmented here, so finite
            for step, global_indices in enumerate(bar, start=1):
                self.global_rows = global_indices.shape[-1]
                # (streams, b): this rank's share of the batch, or its own members' batches
                indices = global_indices[self.own_members]
                if self.shares_batches:
                    indices = batch_share(indices, self.world)
                batch = [
                    self._augment(self.data.train_images[rows], stream.augmentation)
                    for rows, stream in zip(indices, own_streams, strict=True)
                ]
                targets = self.data.train_targets[indices]
                if self.members:
                    loss, correct, kl = self._members_step(torch.stack(batch), targets)
                else:
                    loss, correct, kl = self._step(batch[0], targets[0])
                newly_bad = (first_bad == 0) & ~torch.isfinite(loss)
                first_bad = torch.where(
                    newly_bad, _bad_step_key(loss, step, len(batches)), first_bad
                )
                sums += torch.stack([loss * indices.numel(), correct.float(), kl.float()])
                if step % _READ_EVERY_STEPS == 0 or step == len(batches):
                    self._read_progress(bar, sums, first_bad, step, len(batches), trained)
        # one read: the loss and correct count over every rank, and their mean KL estimate
        loss, correct, kl = summed(sums, self.world).tolist()
        return loss / trained, correct / trained, kl / self.world.size / len(batches)

    def _read_progress(
        self, bar: tqdm, sums: Tensor, first_bad: Tensor, step: int, steps: int, trained: int
    ) -> None:
        """Stop if a loss so far was not finite, and show the running loss and accuracy: one
        wait for the device."""
        totals = summed(sums[:2], self.world)
        first_bad = largest(first_bad.reshape(1), self.world)  # every rank's earliest
        loss_sum, correct_sum, first_bad_key = torch.cat([totals, first_bad]).tolist()
        self._stop_if_diverged(*_bad_step(first_bad_key, steps), steps)
        if self.progress:
            seen = min(step * self.recipe.training.batch_size * len(self.streams), trained)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct_sum / seen:.2%}")

    def _stop_if_diverged(self, first_bad_step: int | None, loss: float, steps: int) -> None:
        """Raise `TrainingDivergedError` if a step's loss was NaN or infinite: the weights are
        ruined from that step on, and no checkpoint of this epoch has been written."""
        if first_bad_step:
            where = f"epoch {self.epoch + 1}, step {first_bad_step} of {steps}"
            raise self._diverged(f"the loss became {loss:g} at {where}")

    def _stop_if_weights_diverged(self) -> None:
        """Raise `TrainingDivergedError` if the epoch's last step, whose loss was finite, left
        weights that are not."""
        finite = torch.stack([torch.isfinite(weight).all() for weight in self.model.parameters()])
        if not finite.all():  # one wait for the device, not one per weight
            raise self._diverged(
                f"the weights became NaN or infinite in the last step of epoch {self.epoch + 1}"
            )

    def _diverged(self, what: str) -> TrainingDivergedError:
        """The error for a run that diverged: what happened, what is kept, what to do."""
        if self.epoch == 0:
            kept = "no epoch had finished, so there is no checkpoint to go on from"
            advice = "change the recipe (a lower optimizer.lr, say) and start again"
        else:
            kept = f"the checkpoint after epoch {self.epoch} is kept in {self.folder}"
            advice = (
                "the same recipe would diverge at the same step again: change it (a lower "
                f"optimizer.lr, say) and go on with `zoo train NEW_RECIPE --out {self.folder} "
                "--resume --allow-recipe-changes`"
            )
        return TrainingDivergedError(f"training diverged: {what}; {kept}; {advice}")

    def _augment(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        """Random shifts (uint8, exact), or random affine maps (normalised floats), drawn from
        ``generator`` (None: the device's default one)."""
        data = self.recipe.data
        if data.max_rotation == 0 and data.max_scale == 0:
            return random_shift(images, data.max_shift, generator=generator)
        pixels = random_affine(
            images, data.max_shift, data.max_rotation, data.max_scale, generator=generator
        )
        return normalise(pixels, self.model.mean, self.model.std)

    def _step(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One optimiser step; returns the batch's mean loss, its correct count and its KL."""
        training = self.recipe.training
        with self._autocast():
            logits = self._logits(images)  # (B, K, C)
            samples = logits.shape[1]
            loss = self._cross_entropy(logits.flatten(0, 1), targets.repeat_interleave(samples))
            kl = kl_divergence(self.model) if self.bayesian else torch.zeros((), device=self.device)
            complexity = (training.kl_weight or 0.0) * kl
            objective = loss + complexity
        # Several ranks: their gradients are averaged, so weigh this rank's share of the batch
        # by its size; each rank's KL (its own estimate under a mixture prior) is averaged
        # with the others', so the KL counts once a step.
        share = self._batch_share_weight(len(targets))
        descended = objective if share == 1 else loss * share + complexity
        self.optimizer.zero_grad(set_to_none=True)
        descended.backward()
        self.optimizer.step()
        self.schedule.step()
        with torch.no_grad():
            predicted = logits.float().softmax(-1).mean(1).argmax(-1)
            correct = (predicted == targets).sum()
        return objective.detach(), correct, kl.detach()

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        """bfloat16 autocast where the run uses it (see `_amp_dtype`), else nothing."""
        if self.amp_dtype:
            return torch.autocast(self.device.type, dtype=self.amp_dtype)
        return nullcontext()

    def _cross_entropy(self, logits: Tensor, targets: Tensor) -> Tensor:
        """The mean cross-entropy of (N, C) ``logits`` in float32, with the recipe's label
        smoothing; by a gather where torch's loss has no deterministic kernel."""
        logits = logits.float()
        smoothing = self.recipe.training.label_smoothing
        if _gathers_nll(logits):
            return _gathered_nll(logits.log_softmax(-1), targets, smoothing).mean()
        return F.cross_entropy(logits, targets, label_smoothing=smoothing)

    def _batch_share_weight(self, rows: int) -> float:
        """The weight of a rank's loss on ``rows`` rows of the step's batch: its share of the
        batch, times the number of ranks, whose gradients are averaged; 1 alone."""
        return rows * self.world.size / self.global_rows if self.shares_batches else 1.0

    def _members_step(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One optimiser step of every member this rank trains, each on its own batch:
        (M, B, 28, 28) images and (M, B) targets, M members. The objective is the sum of the
        members' mean losses, so that each member's gradient is the one it would get alone
        (and no member's depends on another's): spread over ranks, the gradients are summed,
        and each member's comes from its own rank; with shared batches, they are averaged,
        and each rank's share weighs as in `_step`. Returns the mean loss, the correct count
        and a zero KL."""
        with self._autocast():
            logits = self.forward(images, self.own_members)  # (M, B, C)
            # each member's mean loss taken as a LeNet alone takes its own, so that its
            # gradient is the same however many members run here
            losses = torch.stack(list(map(self._cross_entropy, logits, targets)))
            objective = losses.sum() * self._batch_share_weight(targets.shape[1])
            loss = losses.mean()
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        self.optimizer.step()
        self.schedule.step()
        with torch.no_grad():
            correct = (logits.argmax(-1) == targets).sum()
        return loss.detach(), correct, torch.zeros((), device=self.device)

    def _logits(self, images: Tensor) -> Tensor:
        if self.model.stochastic:
            return self.forward(images, self.recipe.training.loss_samples)
        return self.forward(images).unsqueeze(1)

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        """Validation NLL and accuracy; also keeps the best weights when the recipe selects."""
        if len(self.data.validation_targets) == 0:
            return {}
        nll, accuracy = self._validation_metrics()
        improved = self.best_nll is None or nll < self.best_nll
        if improved:
            self.best_nll, self.epochs_since_best = nll, 0
            if self.recipe.training.select == "best_nll":
                self.best_weights = {
                    name: value.detach().clone() for name, value in self.model.state_dict().items()
                }
        else:
            self.epochs_since_best += 1
        return {"val_nll": nll, "val_accuracy": accuracy}

    def _validation_metrics(self) -> tuple[float, float]:
        """The NLL and accuracy on the validation images. Ranks that share batches share them
        too, each measuring its own share with samples from its own seed (so a stochastic
        model's figures depend on the number of ranks, as its training does); ranks that
        spread members measure them whole, as one process does."""
        # Validation draws from its own seeded generators, so how often it runs never changes
        # the training run itself.
        self.model.eval()
        sums = torch.zeros(2, device=self.device)  # NLL and correct count, read once at the end
        count = len(self.data.validation_targets)
        rows, seed = range(count), self.recipe.seed
        if self.shares_batches:
            rows = own_share(count, self.world)
            seed = derived_seed(f"uncertainty-zoo validation on rank {self.world.rank} of {seed}")
        with seeded(seed, self.device):
            for images, targets in zip(
                self.data.validation_images[rows.start : rows.stop].split(1000),
                self.data.validation_targets[rows.start : rows.stop].split(1000),
                strict=True,
            ):
                prediction = self.model.predict(images, self.recipe.training.validation_samples)
                log_probs = prediction.log_probs.float()
                if _gathers_nll(log_probs):
                    nll = _gathered_nll(log_probs, targets).sum()
                else:
                    nll = F.nll_loss(log_probs, targets, reduction="sum")
                sums += torch.stack([nll, (log_probs.argmax(-1) == targets).sum().float()])
        self.model.train()
        if self.shares_batches:
            sums = summed(sums, self.world)
        # rank 0's figures for every rank, so that all take the same decisions
        total_nll, correct = from_rank_zero(sums, self.world).tolist()
        return total_nll / count, correct / count

    def _describe_setup(self) -> dict[str, Any]:
        """What every log line records about where and how the run trains."""
        return {
            "device": describe_device(self.device),
            "hardware": describe_hardware(self.device),
            "amp": str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else None,
            "compiled": self.compiled,
            "deterministic": self.recipe.training.deterministic,
            "torch": torch.__version__,
            "world_size": self.world.size,
            "backend": self.world.backend,
            "distribute": self.distribution if self.world.distributed else None,
        }

    def _save_checkpoint(self) -> None:
        save_checkpoint(
            TrainingState(
                epoch=self.epoch,
                recipe_toml=self.recipe.to_toml(),
                weights=self.model.state_dict(),
                optimizer=self.optimizer.state_dict(),
                scheduler=self.schedule.state_dict(),
                rng=rng_states(self._generators(), self.device),
                log=self.log,
                best_weights=self.best_weights,
                best_nll=self.best_nll,
                epochs_since_best=self.epochs_since_best,
            ),
            self.folder,
        )

    def final_model(self) -> ZooModel:
        """The weights the recipe selects, on the CPU, in eval mode."""
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights, strict=True)
        return self.model.cpu().eval()


_NOT_COMPARED = ("params", *IMPLEMENTATION_SETTINGS)


def _check_state_like(loaded: dict[str, Any], fresh: dict[str, Any], what: str) -> None:
    """Refuse a checkpoint's optimiser or schedule state whose settings are not of the kinds
    this run's own has (a hostile or damaged checkpoint: a string for a learning rate, say)."""
    groups = loaded.get("param_groups", [loaded])
    fresh_groups = fresh.get("param_groups", [fresh])
    if not isinstance(groups, list) or len(groups) != len(fresh_groups):
        raise ValueError(f"{what} state has another shape")
    for group, fresh_group in zip(groups, fresh_groups, strict=True):
        if not isinstance(group, dict):
            raise ValueError(f"{what} state has another shape")
        for key, value in group.items():
            if key in _NOT_COMPARED or key not in fresh_group:
                continue
            if not _same_kind(value, fresh_group[key]):
                raise ValueError(f"{what} {key!r} is {shown(value)}")


def _same_kind(value: object, like: object) -> bool:
    """Whether ``value`` is a finite number where ``like`` is a number, and otherwise of the
    same type as ``like`` (a list, a bool, None, ...)."""
    if isinstance(like, (int, float)) and not isinstance(like, bool):
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    if isinstance(like, (list, tuple)):
        return isinstance(value, (list, tuple)) and all(map(_same_kind, value, like))
    return type(value) is type(like)


def _check_log(log: list[Any], epoch: int) -> None:
    if len(log) != epoch:
        raise ValueError(f"its log has {len(log)} epochs, not {epoch}")
    problem = log_problem(log)
    if problem:
        raise ValueError(f"its log: {problem}")


def _amp_dtype(recipe: Recipe, device: torch.device) -> torch.dtype | None:
    """bfloat16 autocast on a CUDA GPU that computes in it natively, when the recipe allows;
    never on the CPU, so that CPU results stay exact.

    Native means compute capability 8.0 (Ampere) or more, asked of the training GPU itself:
    ``torch.cuda.is_bf16_supported()`` also says yes where bfloat16 is only emulated (V100,
    T4), which is slower than float32 there, and it asks about the current GPU.
    """
    if device.type != "cuda" or not recipe.training.cuda_amp:
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else None


def _gathers_nll(tensor: Tensor) -> bool:
    """Whether the NLL of ``tensor`` must be taken by `_gathered_nll`: on a GPU under
    deterministic algorithms, where torch has no deterministic kernel for its NLL loss
    (``torch.use_deterministic_algorithms`` names it). Elsewhere torch's own losses stay, so
    that CPU runs repeat the official checkpoints bit for bit."""
    return tensor.device.type != "cpu" and torch.are_deterministic_algorithms_enabled()


def _gathered_nll(log_probs: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Each row's cross-entropy from (N, C) log-probabilities, by a gather, which is
    deterministic on GPUs; with label smoothing as ``F.cross_entropy`` defines it."""
    losses = -log_probs.gather(1, targets[:, None]).squeeze(1)
    if label_smoothing:
        losses = (1 - label_smoothing) * losses - label_smoothing * log_probs.mean(-1)
    return losses


class _MembersPass(torch.nn.Module):
    """A deep ensemble's `forward_members` as a module's forward, which
    ``DistributedDataParallel`` can wrap."""

    def __init__(self, ensemble: ZooModel) -> None:
        super().__init__()
        self.ensemble = ensemble

    def forward(self, images: Tensor, members: slice) -> Tensor:
        assert isinstance(self.ensemble, IndependentMembers)
        return self.ensemble.forward_members(images, members)


def _bad_step_key(loss: Tensor, step: int, steps: int) -> Tensor:
    """Step ``step`` of ``steps``, whose loss is not finite, as one number that is larger the
    earlier the step, so that the largest over the ranks names the earliest: (steps + 1 -
    step) * 4, plus 1 for NaN, 2 for +inf, 3 for -inf (which the largest would not keep)."""
    kind = torch.where(loss.isnan(), 1.0, torch.where(loss > 0, 2.0, 3.0))
    return (steps + 1 - step) * 4 + kind


def _bad_step(key: float, steps: int) -> tuple[int | None, float]:
    """The step and loss `_bad_step_key` made ``key`` of; (None, 0) for 0, no bad step."""
    if not key:
        return None, 0.0
    earliness, kind = divmod(int(key), 4)
    return steps + 1 - earliness, (math.nan, math.inf, -math.inf)[kind - 1]


def _batch_order(seed: int) -> torch.Generator:
    """The CPU generator that shuffles a run's training images each epoch."""
    return torch.Generator().manual_seed(seed)


def _steps_per_epoch(images: int, batch_size: int, drop_last: bool, ranks: int = 1) -> int:
    """Steps in an epoch; a last batch too short to give each of ``ranks`` an image is left
    out, as is any short last batch with ``drop_last``."""
    last = images % batch_size
    return images // batch_size + int(last > 0 and not drop_last and last >= ranks)


def _take_implementation_settings(loaded: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    """Give a checkpoint's optimiser state this run's implementation settings (fused or not),
    which follow the device and not the run, before it is loaded."""
    for group, own in zip(loaded["param_groups"], optimizer.param_groups, strict=True):
        group.update({key: own[key] for key in IMPLEMENTATION_SETTINGS if key in own})


def _resumed_on(log: list[dict[str, Any]], device: str) -> bool:
    """Whether the run whose ``log`` this is trained last on ``device`` (as `describe_device`
    names it: a GPU by its index and model, the CPU whatever its thread count)."""
    if not log:
        return True
    last = log[-1]["device"]
    return last == device or (last.startswith("cpu ") and device.startswith("cpu "))


def _format_record(record: dict[str, Any], epochs: int) -> str:
    parts = [
        f"epoch {record['epoch']}/{epochs}",
        f"loss {record['loss']:.4f}",
        f"acc {record['accuracy']:.2%}",
    ]
    if "kl" in record:
        parts.append(f"kl {record['kl']:.4g}")
    if "val_nll" in record:
        parts += [f"val_nll {record['val_nll']:.4f}", f"val_acc {record['val_accuracy']:.2%}"]
    parts += [f"lr {record['lr']:.3g}", f"{record['seconds']:.1f} s"]
    return "  ".join(parts)


def _write_results(
    model: ZooModel,
    recipe: Recipe,
    log: list[dict[str, Any]],
    folder: Path,
    device: torch.device,
    data_dir: str | os.PathLike[str] | None,
    progress: bool,
) -> None:
    """Write the log, the recipe, the model and its evaluation, then drop the checkpoint."""
    write_log(log, folder)
    atomic_write_bytes(folder / RECIPE_NAME, recipe.to_toml().encode("utf-8"))
    model.save_pretrained(folder)
    report = evaluate(
        model,
        samples=recipe.evaluation.samples,
        seed=recipe.evaluation.seed,
        ood=recipe.evaluation.ood,
        device=device,
        data_dir=data_dir,
        progress=progress,
    )
    report.save_json(folder / EVAL_NAME)
    (folder / CHECKPOINT_NAME).unlink(missing_ok=True)
