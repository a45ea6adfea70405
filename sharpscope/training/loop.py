"""Training with SGD, SAM, ASAM or XSAM, writing checkpoints that the probes read.

:func:`train` writes into ``out``:

* ``epoch_000.pt`` (initial weights) and ``epoch_XXX.pt`` every ``save_every`` epochs
  (three-digit epoch number): the trajectory that "over training" probes read;
* ``last.pt`` after every epoch (atomically), with the ``resume`` state: model,
  optimizer and scheduler state dicts, the RNG states and the epoch;
* ``final.pt`` at the end, and ``metrics.jsonl`` (one JSON object per epoch: epoch, lr,
  train_loss, train_acc, test_loss, test_acc, seconds, and alpha for XSAM).

A run interrupted at any point continues with ``resume=True`` and ends with the same
weights, bit for bit on CPU, as a run that was never interrupted.

Under ``torchrun`` (see :mod:`sharpscope.distributed`) the model is wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel`; each global batch of
``batch_size`` samples (the same shuffled order on every rank, from ``seed``) is split
into one contiguous shard per rank, so a run takes the same optimizer steps as a
single process. ``perturbation`` says how the sharpness-aware ascent is distributed:

* ``per-rank`` (default): each rank ascends with the gradient of its own shard, as
  Foret et al. (2021) describe (the first pass runs under ``no_sync``); the gradients
  at the perturbed points are then averaged (weighted by shard sizes). XSAM computes
  each rank's whole direction locally and averages the directions.
* ``global``: every pass is all-reduced, so the ascent uses the gradient of the whole
  global batch and a step equals the single-process step on that batch.

XSAM's alpha search averages the losses of all ranks, so every rank picks the same
alpha. Rank 0 writes the files (the same format as a single process); every rank can
resume from them.

Any batch structure trains (``(x, y)``, ``(mapping, y)``, mappings; see
:mod:`sharpscope.runtime.batches`), with a built-in loss or the caller's ``pkg.mod:fn``.
Batches from a data factory that are not plain tensors are re-cut into ``batch_size``
rows where their shapes allow (else used as given) and visited each epoch in the order
of ``randperm(number of batches)`` drawn from the run's seeded generator (so a resumed
run continues the same order); they train in one process (not under ``torchrun``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from ..errors import SharpscopeError
from ..optim.factory import make_optimizer
from ..problem.data import BatchSplits, DataSplits, check_finite_inputs, load_data
from ..problem.losses import get_loss
from ..problem.models import ModelSpec, build_model
from ..runtime.device import resolve_device, seed_everything
from ..runtime.files import check_writable, folder_lock
from .epoch import check_world, train_epoch
from .evaluate import check_bf16, check_labels
from .result import TrainResult
from .resume import (
    drop_aside,
    inspect_run_folder,
    move_run_aside,
    restore_run,
    set_rng_state,
    settings_diff,
    write_metrics,
)
from .run import Run
from .settings import TrainSettings

__all__ = ["train"]


def train(
    *,
    model: str | ModelSpec = "mlp",
    data: str | DataSplits = "digits",
    optimizer: str = "sgd",
    out: str | Path,
    model_kwargs: dict[str, Any] | None = None,
    samples: int | None = None,
    loss: str = "cross_entropy",
    normalize: bool | str | None = None,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    nesterov: bool = False,
    base: str = "sgd",
    rho: float = 0.05,
    eta: float = 0.01,
    steps: int = 1,
    alpha: float | None = None,
    rho_max: float | None = None,
    alpha_max: float = 2.0,
    alpha_step: float = 0.1,
    search_every: int | None = None,
    bn_policy: str = "clean",
    schedule: str = "cosine",
    warmup_epochs: int = 0,
    milestones: list[int] | None = None,
    gamma: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "auto",
    bf16: bool = False,
    save_every: int = 1,
    eval_batch_size: int = 1024,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    perturbation: str = "per-rank",
) -> TrainResult:
    """Train ``model`` on ``data`` with ``optimizer`` (``sgd``, ``sam``, ``asam`` or ``xsam``).

    ``model``: a model name (``mlp``, ``cnn``, ``resnet20``, ...), ``"pkg.mod:fn"`` or a
    ModelSpec (``model_kwargs`` are merged into it); ``data``: a data spec (``digits``,
    ``cifar10:DIR``, ...) or loaded :class:`DataSplits`; ``out``: the run folder;
    ``device``: ``auto``, ``cpu``, ``cuda``; ``normalize``: a data spec's normalisation
    (``none``, ``standard``, ``"MEAN,STD"``; default: the spec's own, else standard). The
    other settings (``loss``: a name or the caller's ``"pkg.mod:fn"``) are those of
    :class:`~sharpscope.training.TrainSettings`. ``resume``: continue the run in ``out``
    from ``last.pt`` (the settings must match; ``epochs`` may grow); ``force``: overwrite a
    finished or unfinished run; ``callback(epoch, record)`` after each epoch's checkpoint.

    Raises:
        SharpscopeError: invalid settings, an existing run, nothing to resume.
        NonFiniteLossError: the loss became NaN/Inf (``last.pt`` keeps the last good epoch).
        KeyboardInterrupt: passed on; ``last.pt`` holds the last finished epoch.
    """
    t_start = time.perf_counter()
    settings = TrainSettings(
        optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
        nesterov=nesterov, base=base, rho=rho, eta=eta, steps=steps, alpha=alpha,
        rho_max=rho_max, alpha_max=alpha_max, alpha_step=alpha_step,
        search_every=search_every, bn_policy=bn_policy, loss=loss, epochs=epochs,
        batch_size=batch_size, eval_batch_size=eval_batch_size, schedule=schedule,
        warmup_epochs=warmup_epochs, milestones=milestones, gamma=gamma, seed=seed,
        bf16=bf16, save_every=save_every, perturbation=perturbation, samples=samples,
    )  # fmt: skip
    ctx, dev, loss_fn = _environment(settings, device)
    out = Path(out).expanduser()
    splits = _load_splits(data, settings.samples, normalize)
    spec = _model_spec(model, model_kwargs)
    settings = dataclasses.replace(
        settings, model=spec, data=splits.spec, world_size=None if ctx is None else ctx.world_size
    )
    if ctx is not None:
        _check_distributed(ctx, splits, settings.batch_size)
    net, opt = _build(settings, splits, dev)
    main = ctx is None or ctx.is_main
    if main:
        check_writable(out / "last.pt", what="run folder file")
    # The exclusive lock on ``out`` for the whole run: a second train (or a probe that
    # writes there) gets one error naming this one.
    with folder_lock(out, command="train"):
        state = _saved_state(out, settings, ctx, resume=resume, force=force)
        run = Run(out, settings, splits, spec, net, opt, loss_fn, dev, ctx, quiet, callback)
        start = _start(run, state, replace_old=force and not resume and main)
        _epochs(run, start)
        run.save(out / "final.pt", with_resume=False)
    return TrainResult(
        out=out,
        optimizer=settings.optimizer,
        hparams=settings.hparams,
        epochs=settings.epochs,
        metrics=run.metrics,
        seconds=time.perf_counter() - t_start,
        resumed_from=start if state is not None else None,
        alpha_history=[dict(h) for h in opt.alpha_history] if run.is_xsam else [],
    )


def _environment(settings: TrainSettings, device: str | torch.device) -> tuple[Any, Any, Any]:
    """The process group (``None`` outside ``torchrun``), the device and the loss function."""
    from ..runtime.distributed import current

    ctx = current()
    loss_fn = get_loss(settings.loss, allow_import=True)  # the caller named it
    dev = resolve_device(device)
    if ctx is not None:
        if dev.type == "cuda":
            dev = ctx.device  # one GPU per local rank
        elif ctx.backend == "nccl":
            raise SharpscopeError(
                f"the process group uses NCCL (GPUs) but training runs on {dev}: "
                "launch with --device cuda or auto"
            )
    if settings.bf16:
        check_bf16(dev)
    return ctx, dev, loss_fn


def _load_splits(
    data: str | DataSplits | BatchSplits, samples: int | None, normalize: bool | str | None
) -> DataSplits | BatchSplits:
    """The data, validated before anything in the run folder is touched."""
    if isinstance(data, (DataSplits, BatchSplits)):
        if samples is not None:
            raise SharpscopeError(
                "samples= applies to a data spec; subsample DataSplits before passing them"
            )
        if normalize is not None:
            raise SharpscopeError(
                "normalize= applies to a data spec; normalise loaded data before passing it"
            )
        if isinstance(data, DataSplits):
            check_finite_inputs(data)
        return data
    if normalize is None:
        return load_data(data, samples=samples)
    return load_data(data, samples=samples, normalize=normalize)


def _check_distributed(ctx: Any, splits: DataSplits | BatchSplits, batch_size: int) -> None:
    """Tensor data only, with a sample of every global batch for every rank."""
    if isinstance(splits, BatchSplits):
        raise SharpscopeError(
            f"data {splits.spec.spec!r} gives batches (not tensors): training on them "
            "runs in one process; launch without torchrun"
        )
    check_world(ctx, len(splits.y_train), batch_size)


def _model_spec(model: str | ModelSpec, model_kwargs: dict[str, Any] | None) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return ModelSpec(model.name, {**model.kwargs, **(model_kwargs or {})})
    return ModelSpec(str(model), dict(model_kwargs or {}))


def _build(
    settings: TrainSettings, splits: DataSplits | BatchSplits, dev: torch.device
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The seeded initial model and its optimizer; the labels must fit the model."""
    seed_everything(settings.seed)
    net = build_model(
        settings.model, input_shape=splits.input_shape, num_classes=splits.num_classes
    ).to(dev)
    hp = settings.hparams
    opt = make_optimizer(
        settings.optimizer,
        net,
        **{k: v for k, v in hp.items() if k != "betas"},
        **({"betas": tuple(hp["betas"])} if "betas" in hp else {}),
    )
    if isinstance(splits, DataSplits):
        check_labels(net, splits, dev)
    return net, opt


def _saved_state(
    out: Path, settings: TrainSettings, ctx: Any, *, resume: bool, force: bool
) -> SimpleNamespace | None:
    """Refuse to clobber a run; the state to resume (rank 0 reads it when distributed),
    whose settings must match."""

    def inspect() -> dict[str, Any] | None:
        return inspect_run_folder(out, resume=resume, force=force, epochs=settings.epochs)

    state = ctx.run_on_main(inspect) if ctx is not None else inspect()
    if state is None:
        return None
    diff = settings_diff(state["resume"].get("settings", {}), settings.to_dict())
    if diff:
        raise SharpscopeError(f"cannot resume {out}: settings differ: {'; '.join(diff)}")
    return SimpleNamespace(**state)


def _start(run: Run, state: SimpleNamespace | None, *, replace_old: bool) -> int:
    """Write the first checkpoints of a new run (``replace_old``: moving an old run aside,
    restored if that fails) or load the resume state; the last finished epoch."""
    out = run.out
    if state is None:
        aside = move_run_aside(out) if replace_old else None
        try:
            run.save(out / "epoch_000.pt", with_resume=False)
            run.save(run.last_path, with_resume=True)
        except BaseException:
            if aside is not None:
                restore_run(out, aside)
            raise
        drop_aside(aside)
        write_metrics(out, run.metrics)
        return 0
    # The initial weights come from the seed alone: a run killed before epoch_000.pt
    # was written gets it back here, before the resume state replaces them.
    if not (out / "epoch_000.pt").exists():
        run.save(out / "epoch_000.pt", with_resume=False)
    saved = state.resume
    run.net.load_state_dict(saved["model"])
    run.opt.load_state_dict(saved["optimizer"])
    run.sched.load_state_dict(saved["scheduler"])
    set_rng_state(saved["rng"], run.shuffle)
    start = int(saved["epoch"])
    run.metrics = [dict(m) for m in state.metrics][:start]
    # epoch files are written before last.pt; one that is missing anyway (an older
    # run, a deleted file) is the state last.pt holds
    path = run.epoch_file(start)
    if path is not None and not path.exists():
        run.save(path, with_resume=False)
    write_metrics(out, run.metrics)
    return start


def _epochs(run: Run, start: int) -> None:
    """Train the epochs after ``start``, each kept by its checkpoints before the next."""
    if run.local_all:
        run.opt.grad_hook = run.average_directions
    for epoch in range(start + 1, run.settings.epochs + 1):
        record = train_epoch(run, epoch)
        run.metrics.append(record)
        # the epoch file first, then last.pt: an interruption between the two repeats the
        # epoch on resume (and rewrites the epoch file) instead of losing the epoch file
        path = run.epoch_file(epoch)
        if path is not None:
            run.save(path, with_resume=False)
        run.save(run.last_path, with_resume=True)
        write_metrics(run.out, run.metrics)
        if run.callback is not None:
            run.callback(epoch, dict(record))
