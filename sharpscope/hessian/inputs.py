"""The model and data of a checkpoint-level Hessian probe, checked before any product.

Shared by the probes behind ``sharpscope eigen | trace | esd`` and by the probes over
training: load the checkpoint's problem, take the seeded probe subset of its training
split, and refuse weights or a loss that are not finite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CheckpointError, NonFiniteLossError, SharpscopeError

__all__ = ["problem_batches", "check_finite_problem", "load_probe_problem", "probe_inputs"]


def problem_batches(
    problem: Any,
    *,
    samples: int | None = 4096,
    batch_size: int = 512,
    batch_only: bool = False,
    seed: int = 0,
) -> list[tuple[Any, Any]]:
    """The probe data of a :class:`~sharpscope.problem.Problem`: a seeded subset of the
    training split in batches, or only its first batch (``batch_only``)."""
    if batch_size < 1:
        raise SharpscopeError(f"--batch-size must be at least 1, got {batch_size}")
    if samples is not None and samples < 0:
        raise SharpscopeError(f"--samples must be at least 0 (0 = the whole split), got {samples}")
    n = None if not samples else int(samples)
    if batch_only:
        n = min(batch_size, n) if n else batch_size
    batches = problem.batches("train", batch_size, samples=n, seed=seed)
    return batches[:1] if batch_only else batches


def check_finite_problem(
    problem: Any, path: Path, batches: Any = None, *, mode: str = "eval"
) -> None:
    """Refuse, before any Hessian work, a model whose weights or loss are not finite.

    A NaN or infinite parameter (or buffer, e.g. a BatchNorm running mean) makes every
    Hessian-vector product NaN, which later checks would misreport (as non-determinism,
    or as a failure to converge). ``batches``: also evaluate the loss at the centre (one
    forward pass, no gradients; skipped in a distributed run, where ranks see other data).
    """
    import torch

    from ..runtime.batches import loss_on_batch
    from ..runtime.distributed import current
    from ..runtime.functional import probe_mode

    count, first = 0, None
    for name, tensor in problem.model.state_dict().items():
        if torch.is_tensor(tensor) and (tensor.is_floating_point() or tensor.is_complex()):
            bad = int((~torch.isfinite(tensor)).sum())
            if bad and first is None:
                first = name
            count += bad
    if count:
        raise CheckpointError(
            f"{path} has {count} non-finite parameter value{'s' if count != 1 else ''} "
            f"(first: {first}): its Hessian is undefined; probe an earlier checkpoint "
            "(the training probably diverged)"
        )
    if batches is None or current() is not None:
        return
    with torch.no_grad(), probe_mode(problem.model, mode):
        for i, batch in enumerate(batches):
            loss = loss_on_batch(problem.model, problem.loss_fn, batch)
            if not bool(torch.isfinite(loss).all()):
                raise NonFiniteLossError(
                    f"the loss of {path} at its own weights is {float(loss.sum())} on batch "
                    f"{i} of the probe data ({mode} mode): its Hessian is undefined; check "
                    "the data for NaN/inf values"
                )


def load_probe_problem(
    path: Path,
    *,
    model: str | None = None,
    model_kwargs: dict | None = None,
    data: str | None = None,
    loss: str | None = None,
    normalize: str | None = None,
    samples_notice: bool = False,
    device: str = "auto",
) -> Any:
    """The :class:`~sharpscope.problem.Problem` of a checkpoint file (one line if it is
    missing); the keywords as in :func:`~sharpscope.problem.load_problem`."""
    from ..problem import load_problem

    if not Path(path).exists():
        raise SharpscopeError(f"no such file: {path}")
    return load_problem(
        path, model=model, model_kwargs=model_kwargs, data=data, loss=loss,
        normalize=normalize, samples_notice=samples_notice, device=device,
    )  # fmt: skip


def probe_inputs(
    path: Path,
    *,
    samples: int | None,
    batch_size: int,
    batch_only: bool,
    seed: int,
    mode: str,
    **load: Any,
) -> tuple[Any, list[tuple[Any, Any]]]:
    """The checked problem and probe batches of a checkpoint (``load``: the keywords of
    :func:`load_probe_problem`: model, model_kwargs, data, loss, normalize, device...)."""
    problem = load_probe_problem(Path(path), **load)
    batches = problem_batches(
        problem, samples=samples, batch_size=batch_size, batch_only=batch_only, seed=seed
    )
    check_finite_problem(problem, Path(path), batches, mode=mode)
    return problem, batches
