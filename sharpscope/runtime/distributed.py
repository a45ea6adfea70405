"""Multi-GPU and multi-node runs on PyTorch's own distributed engine.

Launch any command with ``torchrun``; every process (rank) runs the same program,
joins the process group through :func:`init_distributed` (NCCL on GPUs, one GPU per
local rank; Gloo on CPUs) and sharpscope splits the work:

* training: :class:`torch.nn.parallel.DistributedDataParallel`, each rank a disjoint
  shard of every global batch (see :func:`sharpscope.train.train`);
* Hessian products: the batches are dealt to the ranks and every product is summed
  over ranks, weighted by sample counts (:class:`sharpscope.hessian.HessianOperator`),
  so Lanczos, Hutchinson and SLQ run in lock-step on every rank and give the
  single-process numbers;
* grids: the points are dealt to the ranks and gathered after every round
  (:func:`sharpscope.landscape.grid.evaluate_grid`).

Only rank 0 prints progress and writes files: :func:`is_main` is false on the other
ranks, :func:`sharpscope.runtime.progress.progress` is silent there and the atomic writers of
:mod:`sharpscope.runtime.files` discard what they are given.

A single process (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) never creates a process
group: :func:`current` is ``None`` and every code path is the single-process one.

Example:
    >>> ctx = init_distributed(device="cpu")  # no torchrun: a single-process context
    >>> ctx.world_size, ctx.is_main, current() is None
    (1, True, True)
    >>> ctx.shard([1, 2, 3])
    [1, 2, 3]
"""

from __future__ import annotations

import atexit
import datetime
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from .. import errors as _errors
from ..errors import SharpscopeError

__all__ = [
    "DistContext",
    "init_distributed",
    "current",
    "is_main",
    "destroy",
    "shard",
    "world_size_from_env",
    "ENV_VARS",
]

T = TypeVar("T")
ENV_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_CURRENT: DistContext | None = None


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a distributed run.

    Attributes:
        rank: global rank (0 .. world_size - 1).
        world_size: number of processes.
        local_rank: rank on this node (the GPU index with NCCL).
        backend: ``"nccl"``, ``"gloo"`` or ``"none"`` (single process).
        device: ``cuda:LOCAL_RANK`` with NCCL, else ``cpu``; collectives run there.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "none"
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the rank that prints and writes files)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when there is more than one process (a process group exists)."""
        return self.world_size > 1

    # ------------------------------------------------------------------ sharding
    def shard(self, items: Sequence[T], *, what: str = "batches", hint: str = "") -> list[T]:
        """This rank's share of ``items``: ``items[rank::world_size]`` (round robin).

        Raises:
            SharpscopeError: fewer items than processes (a rank would sit idle).
        """
        items = list(items)
        if not self.active:
            return items
        if len(items) < self.world_size:
            raise SharpscopeError(
                f"{self.world_size} processes but only {len(items)} {what} to share: "
                f"start at most {len(items)} processes{hint}"
            )
        return items[self.rank :: self.world_size]

    # ------------------------------------------------------------------ collectives
    def _comm(self, tensor: torch.Tensor) -> torch.Tensor:
        """The tensor on the device the backend needs (NCCL: this rank's GPU; Gloo: CPU)."""
        want = self.device if self.backend == "nccl" else torch.device("cpu")
        return tensor if tensor.device == want else tensor.to(want)

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce ``tensor`` over ranks in place (``sum``, ``max`` or ``min``) and return it."""
        if not self.active:
            return tensor
        import torch.distributed as dist

        ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
        buf = self._comm(tensor)
        dist.all_reduce(buf, op=ops[op])
        if buf is not tensor:
            tensor.copy_(buf)
        return tensor

    def weighted_mean(self, tensor: torch.Tensor, count: float) -> tuple[torch.Tensor, float]:
        """``sum_r count_r * tensor_r / sum_r count_r`` over ranks and the total count.

        ``tensor`` is this rank's mean over its ``count`` samples; the result is the
        mean over all samples of all ranks (a new tensor).
        """
        if not self.active:
            return tensor.clone(), float(count)
        packed = torch.cat(
            [
                tensor.detach().reshape(-1).to(torch.float64) * float(count),
                torch.tensor([float(count)], dtype=torch.float64, device=tensor.device),
            ]
        )
        self.all_reduce(packed)
        total = float(packed[-1])
        if total <= 0:
            raise SharpscopeError("no data on any process: nothing to average")
        return (packed[:-1] / total).to(tensor.dtype).reshape(tensor.shape), total

    def broadcast_(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Overwrite ``tensor`` with rank ``src``'s values on every rank (in place)."""
        if not self.active:
            return tensor
        import torch.distributed as dist

        buf = self._comm(tensor)
        dist.broadcast(buf, src=src)
        if buf is not tensor:
            tensor.copy_(buf)
        return tensor

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.active:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def gather_object(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` in rank order on rank 0; ``None`` on the other ranks."""
        if not self.active:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` on every rank (the others' argument is ignored)."""
        if not self.active:
            return obj
        import torch.distributed as dist

        box = [obj if self.rank == src else None]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.active:
            import torch.distributed as dist

            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def run_on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and give its result to every rank.

        An exception raised by ``fn`` is raised on every rank (the same
        :class:`SharpscopeError` subclass and message on the others), so all ranks
        stop together instead of waiting for each other. Used for decisions that
        read files (resume), which only rank 0 is sure to see.
        """
        if not self.active:
            return fn()
        payload: Any = None
        error: BaseException | None = None
        if self.is_main:
            try:
                payload = ("ok", fn())
            except Exception as exc:  # noqa: BLE001 - passed on to every rank below
                error = exc
                name = type(exc).__name__ if isinstance(exc, SharpscopeError) else "SharpscopeError"
                payload = ("error", name, " ".join(str(exc).split()))
        payload = self.broadcast_object(payload)
        if error is not None:
            raise error
        if payload[0] == "error":
            cls = getattr(_errors, payload[1], SharpscopeError)
            raise cls(payload[2])
        return payload[1]


# ----------------------------------------------------------------------------- setup
def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise SharpscopeError(
                f"distributed launch: {name} is not set; start with torchrun "
                "(it sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT)"
            )
        return default
    try:
        return int(raw)
    except ValueError:
        raise SharpscopeError(f"distributed launch: {name}={raw!r} is not a whole number") from None


def world_size_from_env() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset)."""
    return _env_int("WORLD_SIZE", 1)


def _wants_cuda(device: str | torch.device | None) -> bool:
    text = str(device if device is not None else "auto")
    if text == "auto":
        return torch.cuda.is_available()
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SharpscopeError(f"device {text!r} requested but CUDA is not available here")
        return True
    return False


def init_distributed(
    *,
    device: str | torch.device | None = "auto",
    backend: str | None = None,
    timeout_s: float | None = None,
) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment.

    Reads ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``,
    read by :func:`torch.distributed.init_process_group` itself). With CUDA (``device``
    ``cuda`` or ``auto`` on a GPU machine) the backend is NCCL and this rank uses
    ``cuda:LOCAL_RANK``; otherwise Gloo on the CPU. ``backend`` forces one. The ranks
    then compare their sharpscope and torch versions.

    Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) nothing is initialised and a
    single-process context is returned. Calling it again returns the same context.

    Raises:
        SharpscopeError: a misconfigured launch (missing or inconsistent variables,
            fewer GPUs than local ranks, different versions on different ranks).
    """
    global _CURRENT
    if _CURRENT is not None:
        return _CURRENT
    world = world_size_from_env()
    if world < 1:
        raise SharpscopeError(f"distributed launch: WORLD_SIZE must be at least 1, got {world}")
    if world == 1:
        return DistContext()
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            _env_int(name)  # raises the "not set" message
    if not 0 <= rank < world:
        raise SharpscopeError(
            f"distributed launch: RANK={rank} is outside 0..{world - 1} (WORLD_SIZE={world})"
        )
    use_cuda = _wants_cuda(device)
    if use_cuda:
        gpus = torch.cuda.device_count()
        if local_rank >= gpus:
            raise SharpscopeError(
                f"distributed launch: local rank {local_rank} needs GPU {local_rank} but this node "
                f"has {gpus} GPU(s): start at most {gpus} processes per node "
                f"(torchrun --nproc-per-node {gpus}) or use --device cpu"
            )
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    backend = backend or ("nccl" if use_cuda else "gloo")
    if backend not in ("nccl", "gloo"):
        raise SharpscopeError(f"unknown distributed backend {backend!r}: use nccl or gloo")
    import torch.distributed as dist

    if not dist.is_available():
        raise SharpscopeError("this torch build has no torch.distributed support")
    if not dist.is_initialized():
        kw: dict[str, Any] = {}
        if timeout_s is not None:
            kw["timeout"] = datetime.timedelta(seconds=float(timeout_s))
        dist.init_process_group(backend=backend, rank=rank, world_size=world, **kw)
        atexit.register(destroy)
    ctx = DistContext(rank, world, local_rank, backend, dev)
    _check_versions(ctx)
    _CURRENT = ctx
    return ctx


def _check_versions(ctx: DistContext) -> None:
    from .._version import __version__

    mine = (__version__, torch.__version__)
    seen = ctx.all_gather_object(mine)
    if any(v != seen[0] for v in seen):
        listing = "; ".join(f"rank {r}: sharpscope {s}, torch {t}" for r, (s, t) in enumerate(seen))
        raise SharpscopeError(
            f"distributed launch: the ranks run different versions ({listing}): "
            "install the same sharpscope and torch on every node"
        )


def current() -> DistContext | None:
    """The active distributed context, or ``None`` in a single process.

    A process group initialised by the caller (not through :func:`init_distributed`)
    is picked up too: NCCL groups use ``cuda:LOCAL_RANK``, others the CPU.
    """
    global _CURRENT
    if _CURRENT is not None:
        return _CURRENT
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None
    import torch.distributed as dist

    world = dist.get_world_size()
    if world <= 1:
        return None
    backend = str(dist.get_backend())
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device("cuda", local) if "nccl" in backend else torch.device("cpu")
    _CURRENT = DistContext(
        dist.get_rank(), world, local, "nccl" if "nccl" in backend else "gloo", dev
    )
    return _CURRENT


def is_main() -> bool:
    """True in a single process and on rank 0 of a distributed run."""
    ctx = _CURRENT if _CURRENT is not None else current()
    return ctx is None or ctx.is_main


def shard(items: Sequence[T], *, what: str = "batches", hint: str = "") -> list[T]:
    """This rank's share of ``items`` (all of them in a single process); see :meth:`DistContext.shard`."""
    ctx = current()
    return list(items) if ctx is None else ctx.shard(items, what=what, hint=hint)


def destroy() -> None:
    """Leave the process group (if any) and forget the context."""
    global _CURRENT
    _CURRENT = None
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        import torch.distributed as dist

        # Wait for every rank before tearing down: a rank that leaves while a peer is
        # still talking to it makes Gloo abort ("terminate called without an active
        # exception", SIGABRT) in one of them.
        try:
            dist.barrier()
        except RuntimeError:
            pass  # a peer is already gone: nothing left to wait for
        dist.destroy_process_group()
