"""One epoch of a run: the batches (sharded under ``torchrun``), the optimizer steps, the
epoch's evaluation and its checks before a checkpoint keeps it."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import torch

from ..errors import NonFiniteLossError, SharpscopeError
from ..problem.data import iterate_batches
from ..runtime.batches import batch_weight
from ..runtime.progress import progress
from .evaluate import (
    evaluate,
    evaluate_batches,
    is_token_target,
    non_finite_weights,
    perplexity,
    score_counts,
)
from .result import NO_TEST_DATA
from .run import Run

__all__ = ["TOKEN_LOSSES", "check_world", "rank_batches", "train_epoch"]

TOKEN_LOSSES = ("sequence_cross_entropy",)  # losses whose metrics include perplexity
# ... and these, when the targets are integer (N, T) token windows (cross_entropy routes
# (B, T, V) logits to the sequence loss)
WINDOW_LOSSES = ("cross_entropy",)


def rank_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator, ctx: Any
) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    """This rank's part of every global batch: the same ``randperm`` as :func:`iterate_batches`,
    each batch split into ``world_size`` contiguous parts. Yields ``(x, y, global batch size)``."""
    order = torch.randperm(len(y), generator=generator)
    for start in range(0, len(y), batch_size):
        idx = order[start : start + batch_size]
        part = torch.tensor_split(idx, ctx.world_size)[ctx.rank].to(x.device)
        yield x[part], y[part], len(idx)


def check_world(ctx: Any, n: int, batch_size: int) -> None:
    """Every process needs at least one sample of every global batch."""
    world = ctx.world_size
    if batch_size < world:
        raise SharpscopeError(
            f"{world} processes but batches of {batch_size} samples: every process needs at "
            f"least one sample per step; use --batch-size {world} or more"
        )
    last = n % batch_size
    if n < world or 0 < last < world:
        raise SharpscopeError(
            f"{world} processes but the last batch of an epoch holds {last or n} samples "
            f"({n} training samples, batch size {batch_size}): every process needs at least "
            "one sample per step; change --batch-size or --samples"
        )


def _batches(run: Run) -> Iterator[tuple[Any, int]]:
    """The epoch's batches as ``(batch, global batch size)``.

    Tensor data: the seeded ``randperm`` of the samples cut into ``batch_size`` rows.
    Batches from a data factory: the run's batches (:class:`~sharpscope.training.run.Run`)
    in the order of ``randperm(number of batches)`` drawn from the same seeded generator,
    one draw per epoch (so a resumed run continues the same order).
    """
    bs = run.settings.batch_size
    if run.train_batches is not None:
        order = torch.randperm(len(run.train_batches), generator=run.shuffle).tolist()
        return ((run.train_batches[i], 0) for i in order)
    if run.ctx is not None:
        parts = rank_batches(run.x_train, run.y_train, bs, run.shuffle, run.ctx)
        return (((xb, yb), n) for xb, yb, n in parts)
    batches = iterate_batches(run.x_train, run.y_train, bs, shuffle=True, generator=run.shuffle)
    return (((xb, yb), len(yb)) for xb, yb in batches)


def _step(run: Run, batch: Any, *, epoch: int, step: int) -> tuple[torch.Tensor, Any]:
    """One optimizer step on a batch; the clean pass's ``(loss, logits)``."""
    opt, ctx = run.opt, run.ctx
    opt.zero_grad(set_to_none=True)
    with run.passes(not run.local_first):
        loss_t, logits = run.forward_loss(batch)
        value = float(loss_t.detach())
        if not run.all_finite(value):
            where = f" on rank {ctx.rank}" if ctx is not None else ""
            raise NonFiniteLossError(
                f"the training loss became {value}{where} at epoch {epoch}, step {step} "
                f"({run.name}, lr {opt.param_groups[0]['lr']:.3g}): stopped; {run.kept(epoch)}"
            )
        (loss_t if run.local_first else loss_t * run.shard_weight).backward()
    if not run.is_sa:
        opt.step()
        return loss_t, logits
    w = run.shard_weight

    def closure() -> torch.Tensor:
        with run.passes(not run.local_all):
            lo, _ = run.forward_loss(batch)
            (lo if run.local_all else lo * w).backward()
        return lo

    if not run.is_xsam:
        opt.step(closure)
        return loss_t, logits

    def eval_loss() -> float:
        lo = run.forward_loss(batch, run.net)[0].detach()
        if ctx is None:
            return float(lo)
        w = batch_weight(batch, run.loss_fn)
        return float(ctx.weighted_mean(lo.double().reshape(1), w)[0][0])

    opt.step(closure, loss_fn=eval_loss)
    return loss_t, logits


def _check_epoch(
    run: Run, epoch: int, lr_now: float, train_loss: float, test_loss: float | None
) -> None:
    """The step losses are checked before each step, so the last step of an epoch can still
    diverge: the weights and the epoch's evaluation must be finite before a checkpoint keeps
    this epoch."""
    bad = non_finite_weights(run.net)
    what = (
        f"the weights became non-finite ({bad})"
        if bad is not None
        else next(
            (
                f"the {label} loss became {value}"
                for label, value in (("train", train_loss), ("test", test_loss))
                if value is not None and not math.isfinite(value)
            ),
            None,
        )
    )
    if what is not None:
        raise NonFiniteLossError(
            f"{what} at the end of epoch {epoch} ({run.name}, lr {lr_now:.3g}): the training "
            f"diverged; stopped; {run.kept(epoch)}; lower --lr"
        )


def train_epoch(run: Run, epoch: int) -> dict[str, Any]:
    """Train epoch ``epoch``, evaluate it and check it; its metrics record."""
    t0 = time.perf_counter()
    s, dev, ctx = run.settings, run.dev, run.ctx
    run.net.train()
    if run.is_xsam:
        run.opt.new_epoch()
    lr_now = float(run.opt.param_groups[0]["lr"])
    # per-sample loss sum, correct and counted predictions, per-counted-target loss sum
    tot_loss = torch.zeros((), dtype=torch.float64, device=dev)
    counts = torch.zeros(3, dtype=torch.float64, device=dev)
    seen = 0
    bar = progress(
        _batches(run),
        desc=f"{run.name} epoch {epoch}/{s.epochs}",
        total=run.steps_per_epoch,
        quiet=run.quiet,
        leave=True,
        unit="batch",
    )
    for step, (batch, n_global) in enumerate(bar, start=1):
        n = batch_weight(batch, run.loss_fn)
        if ctx is not None:
            run.shard_weight = len(batch[1]) * ctx.world_size / n_global
        loss_t, logits = _step(run, batch, epoch=epoch, step=step)
        run.sched.step()
        seen += n
        loss_d = loss_t.detach().double()
        tot_loss += loss_d * n
        correct, counted = score_counts(logits, batch)
        correct, counted = correct.to(dev).double(), counted.to(dev).double()
        counts += torch.stack([correct, counted, loss_d * counted])
        if _show(run, bar) and (step % 10 == 0 or step == run.steps_per_epoch):
            acc = float(counts[0]) / max(1.0, float(counts[1]))
            bar.set_postfix(loss=f"{float(tot_loss) / seen:.4f}", acc=f"{acc:.3f}")
    if ctx is not None:  # whole-epoch numbers; rank 0's BatchNorm statistics everywhere
        n_seen = torch.tensor(float(seen), device=dev).double()
        sums = ctx.all_reduce(torch.cat([torch.stack([tot_loss, n_seen]), counts]))
        tot_loss, seen, counts = sums[0], int(sums[1]), sums[2:]
        for buf in run.net.buffers():
            ctx.broadcast_(buf)
    train_loss = float(tot_loss) / (seen if seen > 0 else 1)
    counted = max(1.0, float(counts[1]))
    train_acc, train_token_loss = float(counts[0]) / counted, float(counts[2]) / counted
    if run.train_batches is not None:
        train_acc = train_acc if float(counts[1]) > 0 else None  # no class scores
        test = evaluate_batches(run.net, run.loss_fn, run.test_batches(), device=dev, bf16=s.bf16)
    else:
        test = evaluate(
            run.net,
            run.loss_fn,
            run.splits.x_test,
            run.splits.y_test,
            batch_size=s.eval_batch_size,
            device=dev,
            bf16=s.bf16,
            ctx=ctx,
        )
    test_loss, test_acc = test.loss, test.acc
    _check_epoch(run, epoch, lr_now, train_loss, test_loss)
    record: dict[str, Any] = {
        "epoch": epoch,
        "lr": lr_now,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "seconds": time.perf_counter() - t0,
    }
    if _token_metrics(run):  # exp of the mean cross-entropy per counted token
        record["train_perplexity"] = perplexity(train_token_loss)
        record["perplexity"] = perplexity(test.token_loss)
    if run.is_xsam:
        record["alpha"] = run.opt.alpha
    if _show(run, bar):
        bar.set_postfix(
            loss=f"{train_loss:.4f}",
            acc="n/a" if train_acc is None else f"{train_acc:.3f}",
            test_acc=NO_TEST_DATA
            if test_loss is None
            else ("n/a" if test_acc is None else f"{test_acc:.3f}"),
        )
        bar.close()
    return record


def _token_metrics(run: Run) -> bool:
    """Whether the run records perplexity: a token loss, or cross_entropy on integer
    ``(N, T)`` token windows."""
    loss = run.settings.loss
    if loss in TOKEN_LOSSES:
        return True
    if loss not in WINDOW_LOSSES:
        return False
    if run.train_batches is not None:
        from ..runtime.batches import batch_target

        return is_token_target(batch_target(run.train_batches[0]))
    return is_token_target(run.y_train)


def _show(run: Run, bar: Any) -> bool:
    return not run.quiet and hasattr(bar, "set_postfix")
