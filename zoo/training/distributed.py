"""Training on several processes with ``torch.distributed``, as ``torchrun`` starts them.

``torchrun --nproc-per-node N -m zoo train RECIPE`` starts N copies of the command; torchrun
tells each its place through the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, and
the rendezvous address), which `world_from_environment` reads. The trainer then runs
data-parallel: every rank holds the whole model, takes its share of every batch
(`batch_share`), and ``DistributedDataParallel`` averages the gradients, so that each step
is the step one process would take on the whole batch. A deep ensemble may instead spread its
members over the ranks (`own_share`): each trains its own members on their whole batches, and
the gradients are summed (`data_parallel`), so that on the CPU the run is the one a single
process with as many threads makes. Ranks talk over gloo on the CPU and NCCL on CUDA GPUs,
one GPU per local rank.

References:
    Li et al., "PyTorch Distributed: Experiences on Accelerating Data Parallel Training",
    VLDB 2020.
"""

from __future__ import annotations

import inspect
import itertools
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from zoo.devices import derived_seed
from zoo.errors import DeviceError, RecipeError, TrainingProcessError
from zoo.options import LAUNCHED_BY_NPROC_VARIABLE
from zoo.text import first_line

_MAX_WORLD_SIZE = 65536


@dataclass(frozen=True)
class World:
    """Where this process stands among the processes that train together.

    Attributes:
        rank: this process's place, 0 to size - 1; rank 0 writes everything.
        size: how many processes train together (1: a plain run).
        local_rank: its place on its own machine, which picks its GPU.
        backend: "gloo" or "nccl" when several processes train together, else None.
        owns_group: whether `join` started the process group, which `leave` then ends.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files: the checkpoint, the log, the model."""
        return self.rank == 0


ALONE = World()

# What starting the process group raises when the rendezvous is missing or cannot be reached.
_JOINING_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    *(
        getattr(dist, name)
        for name in ("DistNetworkError", "DistStoreError")
        if hasattr(dist, name)
    ),
)


def world_from_environment(environment: Mapping[str, str] = os.environ) -> World:
    """This process's `World`, from the variables torchrun sets; `ALONE` without them.

    The backend is left None here; `join` picks it for the training device.

    Raises:
        DeviceError: the variables are there but not a consistent placement.
    """
    if "WORLD_SIZE" not in environment:
        return ALONE
    values = {}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        text = environment.get(name, "")
        if not (text.isascii() and text.isdigit()) or len(text) > 6:  # "²" is a digit too
            raise DeviceError(f"{name} must be a non-negative integer when WORLD_SIZE is set")
        values[name] = int(text)
    size, rank, local_rank = values["WORLD_SIZE"], values["RANK"], values["LOCAL_RANK"]
    if not 1 <= size <= _MAX_WORLD_SIZE or rank >= size or local_rank > rank:
        raise DeviceError(
            f"RANK {rank}, LOCAL_RANK {local_rank} and WORLD_SIZE {size} do not fit together"
        )
    return World(rank, size, local_rank) if size > 1 else ALONE


def join(world: World, device: torch.device) -> tuple[World, torch.device]:
    """Join the other processes: gloo on the CPU, NCCL on CUDA with the GPU of this process's
    local rank. Returns the world with its backend, and the device to train on."""
    if not world.distributed:
        return world, device
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise DeviceError(
                f"local rank {world.local_rank} has no GPU: this machine has "
                f"{torch.cuda.device_count()}; start at most that many processes per machine"
            )
        device, backend = torch.device("cuda", world.local_rank), "nccl"
        torch.cuda.set_device(device)
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise _not_shareable(device)
    started = not dist.is_initialized()
    if started:
        try:
            dist.init_process_group(backend, rank=world.rank, world_size=world.size)
        except _JOINING_ERRORS as error:  # no rendezvous address, or no store reached
            reason = first_line(error)
            advice = (
                "check torchrun's --rdzv-endpoint (or MASTER_ADDR and MASTER_PORT) and the network"
                if "TORCHELASTIC_RUN_ID" in os.environ
                else "start the processes with torchrun, which sets the rendezvous"
            )
            raise DeviceError(
                f"rank {world.rank} cannot join the other processes ({reason}); {advice}"
            ) from None
    return World(world.rank, world.size, world.local_rank, backend, started), device


def check_processes(processes: int, device: torch.device) -> None:
    """Refuse, before any starts, more processes on this machine than it has GPUs (on CUDA)
    or CPU cores this process may run on (on the CPU): a mistyped count would otherwise start
    that many copies of torch."""
    if device.type == "cuda":
        available, kind = torch.cuda.device_count(), "GPU(s)"
    elif device.type == "cpu":
        available, kind = _usable_cpu_cores(), "CPU core(s) to run on"
    else:
        raise _not_shareable(device)
    if processes > available:
        raise DeviceError(
            f"{processes} processes are more than this machine's {available} {kind}; start at "
            f"most {available} here (torchrun itself starts as many as it is told)"
        )


def _not_shareable(device: torch.device) -> DeviceError:
    return DeviceError(f"training on several processes runs on the CPU or CUDA, not {device}")


def _usable_cpu_cores() -> int:
    """The CPU cores this process may run on (all of the machine's where it cannot tell)."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def leave(world: World) -> None:
    """Leave the process group `join` started; one the caller started stays."""
    if world.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wait_for_all(world: World) -> None:
    """Block until every process gets here."""
    if world.distributed:
        dist.barrier()


def check_batch_size(batch_size: int, world: World) -> None:
    """Refuse a global batch the processes cannot share equally."""
    if batch_size % world.size:
        raise RecipeError(
            f"training.batch_size {batch_size} cannot be shared equally by {world.size} "
            f"processes; make it a multiple of {world.size}"
        )


def check_members(members: int, world: World) -> None:
    """Refuse more processes than a deep ensemble has members to spread over them."""
    if members < world.size:
        raise RecipeError(
            f"{world.size} processes cannot share {members} members, each trained whole by "
            f'one process; start at most {members}, or set training.distribute = "batches" '
            "to share every batch instead"
        )


def shares(count: int, size: int) -> list[range]:
    """``count`` items dealt to ``size`` processes in contiguous runs, as equal as can be:
    the first ``count % size`` processes take one more (``Tensor.tensor_split``'s shares)."""
    base, extra = divmod(count, size)
    starts = [rank * base + min(rank, extra) for rank in range(size + 1)]
    return [range(start, stop) for start, stop in itertools.pairwise(starts)]


def own_share(count: int, world: World) -> range:
    """This process's contiguous share of ``count`` items (all of them when alone)."""
    return shares(count, world.size)[world.rank]


def batch_share(indices: Tensor, world: World) -> Tensor:
    """This process's share of a global batch's (..., B) indices: a contiguous slice, the
    same size for every process but in an epoch's last, shorter batch."""
    if not world.distributed:
        return indices
    rows = own_share(indices.shape[-1], world)
    return indices[..., rows.start : rows.stop]


def rank_epoch_seed(seed: int, rank: int, epoch: int, member: int | None = None) -> int:
    """The seed of the random numbers (augmentation, dropout masks, weight noise) process
    ``rank`` draws in ``epoch`` (for a deep ensemble's ``member``, its augmentation): derived
    afresh each epoch, so that a resumed run draws them again without any process's generator
    state in the checkpoint."""
    of_member = "" if member is None else f", member {member}"
    return derived_seed(f"uncertainty-zoo rank {rank} of seed {seed}, epoch {epoch}{of_member}")


def from_rank_zero(values: Tensor, world: World) -> Tensor:
    """Rank 0's ``values`` on every process (a copy; itself when alone)."""
    return from_rank(values, world, 0)


def from_rank(values: Tensor, world: World, source: int) -> Tensor:
    """Rank ``source``'s ``values`` on every process (a copy; itself when alone)."""
    if not world.distributed:
        return values
    copy = values.clone()
    dist.broadcast(copy, src=source)
    return copy


def summed(values: Tensor, world: World) -> Tensor:
    """``values`` summed over every process (a copy; itself when alone)."""
    return _reduced(values, world, dist.ReduceOp.SUM)


def largest(values: Tensor, world: World) -> Tensor:
    """The elementwise largest of ``values`` over every process (a copy; itself when alone)."""
    return _reduced(values, world, dist.ReduceOp.MAX)


def _reduced(values: Tensor, world: World, operation: dist.ReduceOp.RedOpType) -> Tensor:
    if not world.distributed:
        return values
    reduced = values.clone()
    dist.all_reduce(reduced, op=operation)
    return reduced


def data_parallel(module: torch.nn.Module, *, summing: bool = False) -> DistributedDataParallel:
    """``module`` in ``DistributedDataParallel``, which starts every process from rank 0's
    parameters and then averages their gradients in each backward pass; with ``summing``,
    sums them, for processes that each run other parameters (a deep ensemble's members),
    where a gradient comes whole from one process and zeros from the others, and the sum is
    exact. Buffers are not sent in training, where none changes (whether they are sent at the
    start depends on the torch version; they are the same on every process anyway)."""
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        unsynced = {"forward_sync_buffers": False}  # newer torch, where broadcast_buffers warns
    else:
        unsynced = {"broadcast_buffers": False}
    wrapped = DistributedDataParallel(module, **unsynced)
    if summing:
        wrapped.register_comm_hook(None, _summed_bucket)
    return wrapped


# Unannotated: DDP compares a hook's return annotation with torch.futures.Future[Tensor],
# which this module's postponed annotations would leave a string.
def _summed_bucket(_, bucket):  # type: ignore[no-untyped-def]
    """A gradient bucket summed over the processes (DDP's own hook divides the sum)."""
    reduction = dist.all_reduce(bucket.buffer(), async_op=True)  # a Work, when async
    return reduction.get_future().then(lambda done: done.value()[0])


def launch(processes: int, arguments: Sequence[str]) -> None:
    """Run ``zoo ARGUMENTS`` on ``processes`` processes of this machine, started by torchrun's
    own launcher in this process (on a free port of their own, with none of the ``PET_*``
    settings the environment may hold for another launcher); return when every one has
    ended well. The processes print as they run; torchrun stops them all when one fails.

    Raises:
        TrainingProcessError: a process failed (having said why, as `zoo` does) or was
            stopped by a signal, or this launcher was.
        KeyboardInterrupt: Ctrl-C stopped them.
    """
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous import RendezvousError

    options = ["--standalone", "--nnodes", "1", "--nproc-per-node", str(processes)]
    options += ["--max-restarts", "0", "--redirects", "0", "--tee", "0", "-m", "zoo", *arguments]
    os.environ[LAUNCHED_BY_NPROC_VARIABLE] = "1"  # the processes take this process's environment
    try:
        torchrun.run(torchrun.parse_args(options))
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()
        if failure.exitcode < 0:
            raise TrainingProcessError(
                f"rank {rank} of {processes} processes was stopped by {failure.signal_name()}, "
                "and torchrun stopped the others",
                signal_number=-failure.exitcode,
            ) from None
        raise TrainingProcessError(
            f"rank {rank} of {processes} processes failed (exit code {failure.exitcode}; its "
            "error is above), and torchrun stopped the others"
        ) from None
    except SignalException as stopped:  # the launcher's own Ctrl-C or kill, passed on to all
        if stopped.sigval == signal.SIGINT:
            raise KeyboardInterrupt from None
        name = signal.Signals(stopped.sigval).name
        raise TrainingProcessError(
            f"the processes were stopped by {name}",
            signal_number=int(stopped.sigval),
            launcher_stopped=True,
        ) from None
    except RendezvousError as error:
        raise TrainingProcessError(f"torchrun could not start the processes: {error}") from None
    finally:
        os.environ.pop(LAUNCHED_BY_NPROC_VARIABLE, None)


def lost_contact(error: BaseException, world: World) -> bool:
    """Whether ``error``, raised in a run on several processes, is a collective that failed
    because another process is gone (gloo's closed connections, NCCL's errors)."""
    if not world.distributed or not isinstance(error, RuntimeError):
        return False
    distributed_error = getattr(dist, "DistError", None)
    if isinstance(distributed_error, type) and isinstance(error, distributed_error):
        return True
    return any(mark in str(error) for mark in ("/gloo/", "[gloo]", "NCCL"))
