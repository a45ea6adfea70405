"""The top Hessian eigenvalue and the Hessian trace as sharpness measures (from :mod:`sharpscope.hessian`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from torch import nn

from ..errors import SharpscopeError
from ..runtime.functional import preserved, probe_mode
from .objective import Batch, _as_batches, _base_settings, _check_settings, _names, _Objective
from .result import SharpnessResult

__all__ = ["hessian_sharpness"]


def hessian_sharpness(
    model: nn.Module,
    loss_fn: Callable,
    batches: Iterable[Batch] | Batch,
    *,
    measure: str = "lambda_max",
    rho: float = 1.0,
    mode: str = "eval",
    samples: int = 64,
    tol: float = 1e-4,
    seed: int = 0,
    params: str | Sequence[str] | None = None,
    quiet: bool = True,
) -> SharpnessResult:
    """The top Hessian eigenvalue or the Hessian trace, as a sharpness measure.

    Computed by :mod:`sharpscope.hessian`: Lanczos (:func:`~sharpscope.hessian.lanczos.hessian_eigenvalues`)
    for ``lambda_max``, Hutchinson (:func:`~sharpscope.hessian.trace.hessian_trace`) for
    ``trace``, on the same data and model mode as the other measures. ``extra`` holds
    the second-order predictions of the worst-case and average-case sharpness in the l2
    ball of radius ``rho``: ``rho^2 lambda_max / 2`` (exact at the minimum of a
    quadratic) and ``rho^2 tr(H) / 2`` (exact for any quadratic).

    Args:
        measure: ``"lambda_max"`` or ``"trace"``.
        samples: Hutchinson probe vectors (``trace``; at least 2).
        tol: Lanczos relative residual tolerance (``lambda_max``).
        (the other arguments as in :func:`worst_case_sharpness`)
    """
    from ..hessian.lanczos import hessian_eigenvalues
    from ..hessian.trace import hessian_trace

    if measure not in ("lambda_max", "trace"):
        raise SharpscopeError(f"unknown Hessian measure {measure!r}: choose lambda_max or trace")
    _check_settings(rho=rho, norm="l2", samples=samples)
    if measure == "trace" and samples < 2:
        raise SharpscopeError(f"the trace needs at least 2 samples (probe vectors), got {samples}")
    data = _as_batches(batches)
    names = _names(model, params)
    with preserved(model), probe_mode(model, mode):
        loss0 = _Objective(model, loss_fn, data, names).loss(None)
    settings = _base_settings(
        data, names, measure=measure, rho=rho, norm="l2", adaptive=False, mode=mode, seed=seed
    )
    if measure == "lambda_max":
        eig = hessian_eigenvalues(
            model,
            loss_fn,
            data,
            k=1,
            which="largest",
            params=names,
            mode=mode,
            tol=tol,
            seed=seed,
            quiet=quiet,
        )
        value = float(eig.eigenvalues[0])
        settings.update(tol=tol)
        return SharpnessResult(
            measure=measure,
            value=value,
            loss_at_theta=loss0,
            settings=settings,
            iterations=eig.hvp_count,
            extra={
                "second_order_worst": rho**2 * value / 2,
                "converged": bool(eig.converged),
                "residual": float(eig.residuals[0]),
                "backend": eig.backend,
            },
        )
    tr = hessian_trace(
        model, loss_fn, data, probes=samples, params=names, mode=mode, seed=seed, quiet=quiet
    )
    settings.update(samples=samples, estimator="hutchinson")
    return SharpnessResult(
        measure=measure,
        value=float(tr.trace),
        loss_at_theta=loss0,
        settings=settings,
        iterations=tr.hvp_count,
        stderr=float(tr.stderr),
        extra={"second_order_average": rho**2 * float(tr.trace) / 2, "backend": tr.backend},
    )
