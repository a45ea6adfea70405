"""XSAM: a more faithful implementation of sharpness-aware minimisation.

Chen & Zhou, "Revisiting Sharpness-Aware Minimization: A More Faithful and Effective
Implementation", ICLR 2026.

SAM's update uses the gradient at the ascent point ``theta_k``; XSAM notes that the
direction that really increases the loss lies between ``v0`` (from ``theta_0`` to
``theta_k``) and ``v1`` (the gradient at ``theta_k``), and moves along
``||g(theta_k)|| * slerp(v0, v1; alpha)``. ``alpha = 1`` is SAM; ``alpha`` is found by
a line search over the arc, once per epoch. The ascent and the search live in
:mod:`sharpscope.optim.xsam_ascent` (the XSAM plane probe reuses them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import SharpscopeError
from .base import GRAD_EPS, SharpnessAwareOptimizer, check_number, check_rho, sam_ascent_
from .geometry import global_norm, slerp_coefficients
from .xsam_ascent import (
    AscentResult,
    _ascent_result,
    alpha_grid,
    alpha_search,
    xsam_ascent,
)

__all__ = ["AscentResult", "xsam_ascent", "alpha_search", "alpha_grid", "XSAM"]


class XSAM(SharpnessAwareOptimizer):
    """XSAM (Chen & Zhou, ICLR 2026) around any base optimizer.

    Each step: ``k`` ascent steps of length ``rho/k`` from ``theta_0`` (:func:`xsam_ascent`),
    back to ``theta_0``, the parameters' ``.grad`` replaced by
    ``||g(theta_k)|| * slerp(v0, v1; alpha)``, base optimizer step. ``alpha = 1`` and
    ``k = 1`` is SAM, bit for bit; ``alpha = 0`` moves along ``v0``.

    Args:
        params: module or parameters (see :class:`SharpnessAwareOptimizer`).
        base_optimizer: ``"sgd"``, ``"adamw"`` or an optimizer class.
        rho: total ascent radius (> 0).
        steps: number of ascent steps ``k`` (>= 1).
        alpha: a fixed alpha, or ``None`` (default) for the dynamic search.
        rho_max: radius of the alpha search (default ``2 * rho``).
        alpha_max: largest alpha searched (default 2).
        alpha_step: grid spacing of the search (default 0.1).
        search_every: dynamic alpha: search every this many steps; ``None`` (default):
            at the first step and at the first step after each :meth:`new_epoch` call.
        bn_policy: ``"clean"`` or ``"all"`` (see :class:`SharpnessAwareOptimizer`).
        **base_kwargs: for the base optimizer.

    Attributes:
        alpha: the current alpha.
        alpha_history: one dict ``{step, alpha, alphas, losses}`` per search.
    """

    name = "xsam"

    def __init__(
        self,
        params: nn.Module | Iterable[Any],
        base_optimizer: Any = "sgd",
        *,
        rho: float = 0.05,
        steps: int = 1,
        alpha: float | None = None,
        rho_max: float | None = None,
        alpha_max: float = 2.0,
        alpha_step: float = 0.1,
        search_every: int | None = None,
        bn_policy: str = "clean",
        model: nn.Module | None = None,
        **base_kwargs: Any,
    ) -> None:
        check_rho("xsam", rho)
        self.steps = int(check_number("steps", steps, low=1, integer=True))
        self.dynamic = alpha is None
        self.alpha = 1.0 if alpha is None else float(check_number("alpha", alpha))
        self.rho_max = float(
            2.0 * rho if rho_max is None else check_number("rho_max", rho_max, low=0.0, strict=True)
        )
        self.alpha_max = float(check_number("alpha_max", alpha_max, low=0.0))
        self.alpha_step = float(check_number("alpha_step", alpha_step, low=0.0, strict=True))
        if search_every is not None:
            check_number("search_every", search_every, low=1, integer=True)
        self.search_every = search_every
        self.alpha_history: list[dict[str, Any]] = []
        self.search_due = self.dynamic
        self.last_ascent: AscentResult | None = None
        super().__init__(
            params, base_optimizer, rho=rho, bn_policy=bn_policy, model=model, **base_kwargs
        )

    # ------------------------------------------------------------------ schedule of the search
    def new_epoch(self) -> None:
        """Ask for an alpha search at the next step (dynamic alpha, ``search_every=None``)."""
        if self.dynamic and self.search_every is None:
            self.search_due = True

    def _search_now(self) -> bool:
        if not self.dynamic:
            return False
        if self.search_every is not None:
            return self.steps_done % self.search_every == 0
        return self.search_due

    # ------------------------------------------------------------------ the update
    @torch.no_grad()
    def _set_update(self, params: list[Tensor], res: AscentResult) -> None:
        c0, c1 = slerp_coefficients(res.psi, self.alpha)
        if c0 == 0.0 and c1 == 1.0:
            res.v1  # noqa: B018 - computed now: res.grad becomes .grad, which zero_grad may zero in place
            direction = res.grad  # SAM: the gradient at theta_k as is
        else:
            direction = torch._foreach_mul(res.grad, c1)
            torch._foreach_add_(direction, res.v0, alpha=c0 * res.grad_norm)
        for p, d in zip(params, direction, strict=True):
            p.grad = d

    def _search(self, params: list[Tensor], res: AscentResult, loss_fn: Callable[[], Any]) -> None:
        best, alphas, losses = alpha_search(
            params,
            self._theta0,
            res.v0,
            res.v1,
            res.psi,
            loss_fn,
            rho_max=self.rho_max,
            alpha_max=self.alpha_max,
            step=self.alpha_step,
        )
        self.alpha = float(best)
        self.search_due = False
        self.alpha_history.append(
            {
                "step": self.steps_done,
                "alpha": self.alpha,
                "alphas": alphas,
                "losses": [v if math.isfinite(v) else None for v in losses],
            }
        )

    def _finish(
        self, params: list[Tensor], res: AscentResult, loss_fn: Callable[[], Any] | None
    ) -> None:
        """At theta_k with res: back to theta_0, maybe search alpha, set .grad, base step."""
        with torch.no_grad():
            torch._foreach_copy_(params, self._theta0)
        self._active = None
        self.last_ascent = res
        if self._search_now():
            if loss_fn is None:
                self._unfreeze_bn()
                raise SharpscopeError(
                    f"xsam: an alpha search is due at step {self.steps_done}: pass loss_fn= (a callable "
                    "returning the loss at the current weights without backward)"
                )
            self._search(params, res, loss_fn)
        self._unfreeze_bn()
        self._set_update(params, res)
        if self.grad_hook is not None:
            self.grad_hook(params)
        self.base_optimizer.step()
        self.steps_done += 1

    # ------------------------------------------------------------------ closure API
    @torch.no_grad()
    def step(
        self,
        closure: Callable[[], Any] | None = None,
        *,  # type: ignore[override]
        loss_fn: Callable[[], Any] | None = None,
    ) -> Any:
        """One XSAM step (davda54/sam closure semantics, see :class:`SharpnessAwareOptimizer`).

        The gradient at ``theta_0`` must be in ``.grad``; ``closure`` (forward and
        backward at the current weights, returns the loss) is called ``k`` times.
        ``loss_fn`` (the loss at the current weights, no backward) is used for the alpha
        search when one is due; without it the closure is used and its gradients dropped.
        Returns the closure's last loss (at ``theta_k``).
        """
        closure = self._check_closure(closure)
        params = self._params_with_grad()
        first = [p.grad for p in params]
        self._save_theta0(params)
        self._freeze_bn()
        self._active = params
        last: list[Any] = [None]

        def grad_fn() -> list[Tensor | None]:
            self._drop_grads()
            last[0] = closure()
            return [p.grad for p in params]

        def closure_loss() -> float:
            self._drop_grads()  # never accumulate into the gradient at theta_k held by the result
            with torch.enable_grad():
                value = closure()
            self._drop_grads()
            return float(value)

        try:
            res = xsam_ascent(
                params,
                grad_fn,
                rho=self.rho,
                steps=self.steps,
                first_grad=first,
                theta0=self._theta0,
            )
            self._finish(params, res, loss_fn if loss_fn is not None else closure_loss)
        except BaseException:
            self._abort()
            raise
        return last[0]

    # ------------------------------------------------------------------ two-pass API
    def perturbation(self, params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        """One of XSAM's ``k`` ascent steps: ``(rho / k) g / ||g||`` (what :func:`xsam_ascent` adds).

        The optimizer itself steps through :func:`xsam_ascent`; this is the per-step vector
        for code that asks any sharpness-aware optimizer for its perturbation.
        """
        scale = (self.rho / self.steps) / (global_norm(grads) + GRAD_EPS)
        return torch._foreach_mul(list(grads), scale)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False, closure: Callable[[], Any] | None = None) -> None:
        """Save ``theta_0`` and ascend to ``theta_k`` with the gradient in ``.grad``.

        ``k > 1`` needs ``closure`` (forward and backward at the current weights) for the
        intermediate gradients; the gradient at ``theta_k`` is then computed by the
        caller, as for SAM, before :meth:`second_step`.
        """
        if self.steps > 1 and closure is None:
            raise SharpscopeError(
                f"xsam.first_step with steps={self.steps} needs closure= for the "
                "intermediate gradients (or use step(closure))"
            )
        params = self._params_with_grad()
        self._save_theta0(params)
        self._freeze_bn()
        self._active = params
        try:
            grad = [p.grad for p in params]
            for i in range(self.steps):
                sam_ascent_(params, grad, self.rho / self.steps)
                if i + 1 < self.steps:
                    self.zero_grad()
                    with torch.enable_grad():
                        closure()  # type: ignore[misc]
                    grad = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        except BaseException:
            self._abort()
            raise
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(
        self, zero_grad: bool = False, loss_fn: Callable[[], Any] | None = None
    ) -> None:  # type: ignore[override]
        """With ``g(theta_k)`` in ``.grad``: back to ``theta_0``, alpha search when due
        (``loss_fn`` required then), ``.grad`` replaced by the XSAM direction, base step."""
        if self._active is None:
            raise SharpscopeError("xsam.second_step() called without first_step()")
        params = self._active
        res = _ascent_result(
            params,
            self._theta0,
            [torch.zeros_like(p) if p.grad is None else p.grad for p in params],
        )
        try:
            self._finish(params, res, loss_fn)
        except BaseException:
            self._abort()
            raise
        if zero_grad:
            self.zero_grad()

    # ------------------------------------------------------------------ state
    @property
    def hparams(self) -> dict[str, Any]:
        return {
            **super().hparams,
            "steps": self.steps,
            "alpha": None if self.dynamic else self.alpha,
            "rho_max": self.rho_max,
            "alpha_max": self.alpha_max,
            "alpha_step": self.alpha_step,
            "search_every": self.search_every,
        }

    def _wrapper_state(self) -> dict[str, Any]:
        return {
            **super()._wrapper_state(),
            "alpha": self.alpha,
            "search_due": self.search_due,
            "alpha_history": [dict(h) for h in self.alpha_history],
        }

    def _load_wrapper_state(self, state: dict[str, Any]) -> None:
        super()._load_wrapper_state(state)
        self.alpha = float(state.get("alpha", self.alpha))
        self.search_due = bool(state.get("search_due", self.search_due))
        self.alpha_history = [dict(h) for h in state.get("alpha_history", [])]
