"""One model, not one per rank: what data-driven passes do under ``torchrun``.

Outside a process group every function here is a no-op on one process. Inside one, scores
and decisions are computed on rank 0 and broadcast (so every rank prunes the same
channels, exactly as a single process would), and before training the ranks check that
they hold the same pruned model (a hash of its graph and tensors) and fail loudly if not.
"""
from __future__ import annotations

import hashlib
import os

import torch

from pruneql.errors import DistributedError, PruneQLError


def world() -> tuple:
    """(rank, world size) of this process; (0, 1) outside torchrun."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed() -> tuple:
    """Join the process group torchrun describes (gloo on CPU, nccl on GPUs: each rank
    then works on ``cuda:LOCAL_RANK``), if any; returns (rank, world size)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and torch.distributed.is_available() \
            and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend)
    return world()


def device() -> torch.device:
    """Where this rank trains: ``cuda:LOCAL_RANK`` under nccl, else the CPU."""
    if world()[1] > 1 and torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def from_leader(compute):
    """``compute()`` on rank 0, its result broadcast to every rank (a PruneQLError it
    raises is raised on every rank, so none waits forever).

    >>> from_leader(lambda: 42)
    42
    """
    rank, size = world()
    if size == 1:
        return compute()
    box = [None]
    if rank == 0:
        try:
            box = [("ok", compute())]
        except PruneQLError as exc:
            box = [("error", exc)]
    torch.distributed.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def fingerprint(module: torch.nn.Module) -> str:
    """A hash of a module's code (for a GraphModule) and of every tensor's name, shape and
    bytes: equal on two ranks exactly when they hold the same model."""
    digest = hashlib.sha256(getattr(module, "code", type(module).__name__).encode())
    for name, t in module.state_dict().items():
        digest.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def agree(what: str, module: torch.nn.Module) -> None:
    """Raise DistributedError unless every rank holds the same ``module``."""
    rank, size = world()
    if size == 1:
        return
    mine = fingerprint(module)
    every = [None] * size
    torch.distributed.all_gather_object(every, mine)
    differ = [r for r, h in enumerate(every) if h != every[0]]
    if differ:
        raise DistributedError(f"ranks disagree about the {what}: rank {differ[0]} holds a "
                               f"different model than rank 0",
                               hint="this is a PruneQL bug (decisions are broadcast from rank "
                                    "0); please report it with the recipe")
