"""The record of a Lanczos eigenpair computation: :class:`EigenResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["EigenResult"]


@dataclass
class EigenResult:
    """Eigenpairs of a Hessian operator.

    Attributes:
        eigenvalues: float64 tensor; descending for ``largest`` and ``both`` (the most
            negative last), ascending for ``smallest``.
        eigenvalues: Rayleigh quotients ``v^T H v`` of the returned unit vectors.
        residuals: relative residuals ``||H v - lambda v|| / |lambda|`` of the returned
            vectors, computed from real products.
        residual_source: ``"products"`` (from the Lanczos products, ``H Q s``) or
            ``"fresh-products"`` (``verify=True``: one more block product of the vectors).
        stopped_on: ``"residual"``, ``"value"`` (Ritz values settled), ``"dimension"``
            (the basis spans the space), ``"max_products"`` or ``"rounding_floor"``
            (residuals stopped falling above ``tol``).
        determinism_checked: whether the operator's determinism check has passed.
        eigenvectors: ``(k, dim)`` flat unit vectors in the operator's parameter order, or None.
        hvp_count: every Hessian-vector product this call made (determinism check included).
        lanczos_products: the products of the Lanczos iteration itself.
    """

    eigenvalues: torch.Tensor
    residuals: torch.Tensor
    which: str
    hvp_count: int
    lanczos_products: int
    converged: bool
    seconds: float
    tol: float
    residual_source: str = "products"
    eigenvectors: torch.Tensor | None = None
    names: list[str] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    backend: str = ""
    mode: str = "eval"
    samples: int | None = None
    device: str = "cpu"
    block_size: int = 1
    stopped_on: str = ""
    determinism_checked: bool = False

    @property
    def ratio(self) -> float | None:
        """Li et al. (2018)'s non-convexity measure ``|lambda_min| / lambda_max`` (``both`` only)."""
        if self.which != "both" or len(self.eigenvalues) < 2:
            return None
        top, low = float(self.eigenvalues.max()), float(self.eigenvalues.min())
        return abs(min(low, 0.0)) / top if top > 0 else None

    def vectors(self) -> list[dict[str, torch.Tensor]]:
        """The eigenvectors as ``{name: tensor}`` dicts (unit norm overall)."""
        if self.eigenvectors is None:
            return []
        sizes = [int(np.prod(self.shapes[n])) for n in self.names]
        out = []
        for vec in self.eigenvectors:
            parts = torch.split(vec, sizes)
            out.append(
                {
                    n: p.reshape(self.shapes[n]).clone()
                    for n, p in zip(self.names, parts, strict=False)
                }
            )
        return out

    @property
    def mode_note(self) -> str:
        """Why this result depends on the mode on a BatchNorm model (eval vs train)."""
        from .reprs import mode_note

        return mode_note(self.mode)

    def _rows(self) -> list[tuple[str, str]]:
        from .reprs import num

        res = [float(r) for r in self.residuals]
        return [
            ("eigenvalues", ", ".join(num(float(v)) for v in self.eigenvalues[:6])),
            ("largest residual", num(max(res)) if res else "n/a"),
            ("which", self.which),
            ("converged", f"{self.converged} (stopped on {self.stopped_on or 'n/a'})"),
            ("Hessian-vector products", str(self.hvp_count)),
            ("mode", self.mode),
        ]

    def __repr__(self) -> str:
        """One short line: the leading eigenvalues, convergence and cost."""
        from .reprs import num, short_repr

        vals = [num(float(v)) for v in self.eigenvalues[:4]]
        more = ", ..." if len(self.eigenvalues) > 4 else ""
        return short_repr(
            "EigenResult",
            [
                ("eigenvalues", "[" + ", ".join(vals) + more + "]"),
                ("which", repr(self.which)),
                ("converged", str(self.converged)),
                ("hvp_count", str(self.hvp_count)),
                ("mode", repr(self.mode)),
            ],
        )

    def _repr_html_(self) -> str:
        from .reprs import html_table

        return html_table("Hessian eigenvalues (Lanczos)", self._rows())

    def to_dict(self) -> dict[str, Any]:
        return {
            "eigenvalues": [float(v) for v in self.eigenvalues],
            "residuals": [float(r) for r in self.residuals],
            "residual_source": self.residual_source,
            "which": self.which,
            "ratio": self.ratio,
            "hvp_count": self.hvp_count,
            "lanczos_products": self.lanczos_products,
            "converged": self.converged,
            "stopped_on": self.stopped_on,
            "determinism_checked": self.determinism_checked,
            "tol": self.tol,
            "seconds": self.seconds,
            "samples": self.samples,
            "mode": self.mode,
            "device": self.device,
            "backend": self.backend,
            "block_size": self.block_size,
            "parameters": int(sum(int(np.prod(s)) for s in self.shapes.values())),
        }
