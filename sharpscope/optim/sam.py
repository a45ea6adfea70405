"""SAM and ASAM around any base optimizer (closure and two-pass APIs, see :mod:`.base`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from .base import GRAD_EPS, SharpnessAwareOptimizer, check_number
from .geometry import global_norm

__all__ = ["SAM", "ASAM", "ASAM_SCALED"]

ASAM_SCALED = ("weights", "all")


class SAM(SharpnessAwareOptimizer):
    """Sharpness-Aware Minimization (Foret et al., ICLR 2021).

    .. math::
        e(w) = \\rho \\frac{g(w)}{\\|g(w)\\|}, \\qquad w \\leftarrow \\mathrm{base\\_step}(w, g(w + e(w)))

    Example:
        >>> model = torch.nn.Linear(3, 2)
        >>> opt = SAM(model, "sgd", rho=0.05, lr=0.1, momentum=0.9)
        >>> x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
        >>> def closure():
        ...     loss = torch.nn.functional.cross_entropy(model(x), y)
        ...     loss.backward()
        ...     return loss
        >>> _ = closure()          # gradient at w
        >>> _ = opt.step(closure)  # gradient at w + e(w), then the base step at w
    """

    name = "sam"

    def __init__(
        self,
        params: nn.Module | Iterable[Any],
        base_optimizer: Any = "sgd",
        *,
        rho: float = 0.05,
        bn_policy: str = "clean",
        model: nn.Module | None = None,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(
            params, base_optimizer, rho=rho, bn_policy=bn_policy, model=model, **base_kwargs
        )

    @torch.no_grad()
    def perturbation(self, params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        scale = self.rho / (global_norm(grads) + GRAD_EPS)
        return torch._foreach_mul(grads, scale)


class ASAM(SharpnessAwareOptimizer):
    """Adaptive SAM (Kwon et al., ICML 2021): the ascent is scaled element-wise by ``T_w = |w| + eta``.

    .. math::
        e(w) = \\rho \\frac{T_w^2 g}{\\|T_w g\\|}

    Args:
        scaled: which parameters get ``T_w = |w| + eta``; the others use ``T = 1``.
            ``"weights"`` (default): tensors with two or more dimensions (linear and conv
            weights), not biases and normalisation parameters; ``"all"``: every
            parameter. A param group may override it with the key ``"adaptive"`` (bool).
        eta: the offset ``eta >= 0`` (default 0.01).
        rho: the radius (the paper uses larger values than SAM's, e.g. 0.5 on CIFAR).
    """

    name = "asam"

    def __init__(
        self,
        params: nn.Module | Iterable[Any],
        base_optimizer: Any = "sgd",
        *,
        rho: float = 0.5,
        eta: float = 0.01,
        scaled: str = "weights",
        bn_policy: str = "clean",
        model: nn.Module | None = None,
        **base_kwargs: Any,
    ) -> None:
        from ..errors import SharpscopeError

        self.eta = float(check_number("eta", eta, low=0.0))
        if scaled not in ASAM_SCALED:
            raise SharpscopeError(f"unknown ASAM scaled={scaled!r}: use 'weights' or 'all'")
        self.scaled = scaled
        super().__init__(
            params, base_optimizer, rho=rho, bn_policy=bn_policy, model=model, **base_kwargs
        )

    def _is_scaled(self, p: Tensor, group: dict[str, Any]) -> bool:
        if "adaptive" in group:
            return bool(group["adaptive"])
        return self.scaled == "all" or p.dim() >= 2

    @torch.no_grad()
    def perturbation(self, params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        flags = {id(p): self._is_scaled(p, g) for g in self.param_groups for p in g["params"]}
        s_idx = [i for i, p in enumerate(params) if flags[id(p)]]
        u_idx = [i for i, p in enumerate(params) if not flags[id(p)]]
        t_w = torch._foreach_abs([params[i] for i in s_idx]) if s_idx else []
        if s_idx:
            torch._foreach_add_(t_w, self.eta)
        tg = list(torch._foreach_mul(t_w, [grads[i] for i in s_idx])) if s_idx else []
        g_u = [grads[i] for i in u_idx]
        scale = self.rho / (global_norm(list(tg) + g_u) + GRAD_EPS)
        out: list[Tensor | None] = [None] * len(params)
        if s_idx:
            torch._foreach_mul_(tg, t_w)
            for i, e in zip(s_idx, torch._foreach_mul(tg, scale), strict=True):
                out[i] = e
        if u_idx:
            for i, e in zip(u_idx, torch._foreach_mul(g_u, scale), strict=True):
                out[i] = e
        return out  # type: ignore[return-value]

    @property
    def hparams(self) -> dict[str, Any]:
        return {**super().hparams, "eta": self.eta, "scaled": self.scaled}
