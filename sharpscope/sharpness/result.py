"""The result of one sharpness measure: :class:`SharpnessResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["SharpnessResult"]


@dataclass(repr=False)
class SharpnessResult:
    """One sharpness number and how it was obtained.

    Attributes:
        measure: ``worst``, ``average``, ``lambda_max`` or ``trace``.
        value: the sharpness (a loss increase for ``worst``/``average``; the
            eigenvalue or trace for the Hessian measures).
        loss_at_theta: the loss at the unperturbed parameters.
        settings: every setting that defines the number (rho, norm, adaptive, mode,
            data size, steps...), so two results can be checked for comparability.
        iterations: loss-gradient evaluations (``worst``), loss evaluations
            (``average``) or Hessian-vector products (Hessian measures) used.
        stderr: Monte Carlo standard error (``average`` only).
        perturbed_loss: ``L(theta + delta*)`` (``worst``) or the mean perturbed loss (``average``).
        delta: the maximising perturbation by parameter name (``worst`` only).
        history: best loss increase after each ascent step (``worst``) or running
            mean (``average``).
        extra: measure-specific numbers (e.g. the second-order predictions; ``worst``:
            ``on_boundary``, whether the best point lies on the ball's surface, and
            ``starts_still_rising``, the starts the step limit cut short).
        boundary_note: a one-line warning when the search ended on its limit (``worst``:
            every start was still raising the loss at the step limit), else ``None``.
    """

    measure: str
    value: float
    loss_at_theta: float
    settings: dict[str, Any]
    iterations: int = 0
    stderr: float | None = None
    perturbed_loss: float | None = None
    delta: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    history: list[float] = field(default_factory=list, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)
    boundary_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready numbers: ``sharpness``, ``loss``, ``stderr``, ``settings``..."""
        out: dict[str, Any] = {
            "measure": self.measure,
            "sharpness": self.value,
            "loss": self.loss_at_theta,
            "perturbed_loss": self.perturbed_loss,
            "stderr": self.stderr,
            "iterations": self.iterations,
            "settings": dict(self.settings),
            "boundary_note": self.boundary_note,
        }
        out.update(self.extra)
        return out

    def _summary(self) -> list[tuple[str, str]]:
        """The few numbers worth showing: (label, formatted value) pairs."""
        s = self.settings
        value = f"{self.value:.6g}"
        if self.stderr is not None:
            value += f" +- {self.stderr:.2g}"
        rows = [(self.measure, value), ("loss at theta", f"{self.loss_at_theta:.6g}")]
        if self.perturbed_loss is not None:
            rows.append(("perturbed loss", f"{self.perturbed_loss:.6g}"))
        geometry = f"rho={s.get('rho', float('nan')):g} {s.get('norm', '')}"
        rows.append(("ball", geometry + (" adaptive" if s.get("adaptive") else "")))
        rows.append(("evaluations", str(self.iterations)))
        if self.boundary_note:
            rows.append(("warning", self.boundary_note))
        return rows

    def __repr__(self) -> str:
        """One short line (no tensors, no history): ``SharpnessResult(worst=0.0123, ...)``."""
        return "SharpnessResult(" + ", ".join(f"{k}={v}" for k, v in self._summary()) + ")"

    def _repr_html_(self) -> str:
        """A small table for notebooks."""
        return _html_table("SharpnessResult", self._summary())


def _html_table(title: str, rows: list[tuple[str, str]]) -> str:
    from html import escape

    body = "".join(
        f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(v)}</td></tr>"
        for k, v in rows
    )
    return f"<table><caption>{escape(title)}</caption>{body}</table>"
