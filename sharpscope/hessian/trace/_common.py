"""Shared pieces of the trace estimators: probes and the result record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...errors import SharpscopeError
from ..operator import HessianOperator


@dataclass
class TraceResult:
    """A stochastic trace estimate with its standard error.

    Attributes:
        trace: estimate of ``tr(H)``.
        stderr: its standard error (from the spread of the probe values).
        trace_h2: estimate of ``tr(H^2) = E ||H v||^2`` from the same probes.
        stderr_h2: its standard error.
        samples: the per-probe values ``v^T H v`` of the stochastic part.
        method: ``"hutchinson"``, ``"hutchpp"``, ``"xtrace"`` or ``"exact"`` (``dim``
            products with the unit vectors, standard error 0).
        target_rel_stderr, reached: the stated relative standard error of
            :func:`~sharpscope.hessian.trace.trace_to_stderr` and whether it was reached.
    """

    trace: float
    stderr: float
    trace_h2: float
    stderr_h2: float
    method: str
    probes: int
    hvp_count: int
    seconds: float
    samples: list[float]
    backend: str = ""
    mode: str = "eval"
    num_samples: int | None = None
    device: str = "cpu"
    dim: int = 0
    target_rel_stderr: float | None = None  # set by trace_to_stderr
    reached: bool | None = None  # whether that target was reached within the budget

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace": self.trace,
            "stderr": self.stderr,
            "trace_h2": self.trace_h2,
            "stderr_h2": self.stderr_h2,
            "method": self.method,
            "probes": self.probes,
            "hvp_count": self.hvp_count,
            "seconds": self.seconds,
            "samples": self.num_samples,
            "mode": self.mode,
            "device": self.device,
            "backend": self.backend,
            "parameters": self.dim,
            "probe_values": self.samples,
            **(
                {"target_rel_stderr": self.target_rel_stderr, "reached": self.reached}
                if self.target_rel_stderr is not None
                else {}
            ),
        }

    def _rows(self) -> list[tuple[str, str]]:
        from ..reprs import num

        return [
            ("trace", num(self.trace, self.stderr)),
            ("tr(H^2)", num(self.trace_h2, self.stderr_h2)),
            ("method", self.method),
            ("probes", str(self.probes)),
            ("Hessian-vector products", str(self.hvp_count)),
            ("mode", self.mode),
        ]

    def __repr__(self) -> str:
        """One short line: the estimate with its standard error, method and cost."""
        from ..reprs import num, short_repr

        return short_repr(
            "TraceResult",
            [
                ("trace", num(self.trace, self.stderr)),
                ("method", repr(self.method)),
                ("probes", str(self.probes)),
                ("hvp_count", str(self.hvp_count)),
                ("mode", repr(self.mode)),
            ],
        )

    def _repr_html_(self) -> str:
        from ..reprs import html_table

        return html_table("Hessian trace estimate", self._rows())


def rademacher(op: HessianOperator, k: int, gen: torch.Generator) -> torch.Tensor:
    """``(dim, k)`` Rademacher probes (+-1), drawn on the CPU from ``gen`` for reproducibility."""
    signs = torch.randint(0, 2, (op.dim, k), generator=gen, dtype=torch.int8)
    return (signs.to(op.dtype) * 2 - 1).to(op.device)


def mean_stderr(values: torch.Tensor) -> tuple[float, float]:
    values = values.double().cpu()
    m = float(values.mean())
    se = (
        float(values.std(unbiased=True) / values.numel() ** 0.5)
        if values.numel() > 1
        else float("nan")
    )
    return m, se


def check_probes(probes: int, minimum: int = 1) -> None:
    if int(probes) < minimum:
        raise SharpscopeError(f"probes must be at least {minimum}, got {probes}")


def products(op: HessianOperator, V: torch.Tensor) -> torch.Tensor:
    """``H @ V`` through :meth:`HessianOperator.matmat`, in blocks of ``op.preferred_block``.

    Every estimator multiplies through this one routine with the block size Lanczos
    uses, so a trace product costs what a Lanczos product costs.
    """
    b = max(1, int(getattr(op, "preferred_block", 1)))
    if V.shape[1] <= b:
        return op.matmat(V)
    return torch.cat([op.matmat(V[:, i : i + b]) for i in range(0, V.shape[1], b)], dim=1)


def begin(op: HessianOperator, *, check: bool, seed: int) -> int:
    """Start an estimate: the ``hvp_count`` to subtract (so that products spent choosing
    the backend are reported once), after the determinism check if asked and not yet passed."""
    take = getattr(op, "take_setup_products", None)
    start = op.hvp_count - (take() if take is not None else 0)
    if check and not getattr(op, "checked", False):
        op.check_determinism(seed=seed)
    return start
