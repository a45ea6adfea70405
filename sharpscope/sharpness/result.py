"""The result of one sharpness measure: :class:`SharpnessResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["SharpnessResult"]


@dataclass
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
        extra: measure-specific numbers (e.g. the second-order predictions).
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
        }
        out.update(self.extra)
        return out
