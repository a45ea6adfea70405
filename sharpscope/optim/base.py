"""Machinery shared by the sharpness-aware optimizers (SAM, ASAM, XSAM).

:class:`SharpnessAwareOptimizer` wraps any base ``torch.optim.Optimizer`` the way
davda54/sam does (the base optimizer is built on the wrapper's ``param_groups``, so
LR schedulers and ``zero_grad`` act on both), and adds what that code leaves to the
user: hyper-parameter validation, the BatchNorm policy, a ``state_dict`` that holds the
base optimizer's state (momentum buffers) too, and ``torch._foreach_*`` arithmetic.

Two ways to drive one step, giving identical weights:

* closure API (davda54/sam semantics)::

      loss = loss_fn(model(x), y)     # the caller's clean pass at w ...
      loss.backward()                 # ... leaves the gradient at w in .grad
      opt.step(closure)               # closure: forward + backward at the CURRENT weights,
      opt.zero_grad()                 # returns the loss; it need not call zero_grad

* two-pass API (as in the papers)::

      loss_fn(model(x), y).backward()
      opt.first_step(zero_grad=True)  # w -> w + e(w)
      loss_fn(model(x), y).backward()
      opt.second_step(zero_grad=True) # back to w, base optimizer step
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..errors import SharpscopeError
from .geometry import global_norm

__all__ = [
    "BN_POLICIES",
    "SharpnessAwareOptimizer",
    "resolve_base_optimizer",
    "running_stats_frozen",
    "freeze_running_stats",
    "restore_running_stats",
    "sam_ascent_",
    "check_number",
    "check_rho",
]

BN_POLICIES = ("clean", "all")
GRAD_EPS = 1e-12
"""Added to gradient norms before dividing (a zero gradient gives a zero perturbation)."""

_BASES: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adamw": torch.optim.AdamW,
    "adam": torch.optim.Adam,
}


def check_number(
    name: str, value: Any, *, low: float | None = None, strict: bool = False, integer: bool = False
) -> Any:
    """Validate a hyper-parameter; raise a one-line :class:`SharpscopeError` naming it and its value."""
    kind = "a whole number" if integer else "a number"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (integer and not isinstance(value, int))
    ):
        raise SharpscopeError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise SharpscopeError(f"{name} must be finite, got {value!r}")
    if low is not None and (value <= low if strict else value < low):
        raise SharpscopeError(f"{name} must be {'>' if strict else '>='} {low:g}, got {value!r}")
    return value


def check_rho(name: str, rho: Any) -> float:
    """A sharpness-aware radius: > 0 (rho 0 is the base optimizer alone: refused, not implied)."""
    rho = float(check_number("rho", rho, low=0.0))
    if rho == 0:
        raise SharpscopeError(
            f"rho must be > 0, got {rho!r}: {name} with rho 0 is plain gradient descent; "
            "use optimizer 'sgd' (--optimizer sgd) for that"
        )
    return rho


def check_bn_policy(bn_policy: Any) -> str:
    if bn_policy not in BN_POLICIES:
        raise SharpscopeError(
            f"unknown bn_policy {bn_policy!r}: use 'clean' (running statistics from the "
            "clean pass only) or 'all' (updated on every pass)"
        )
    return bn_policy


def resolve_base_optimizer(base: Any) -> Callable[..., torch.optim.Optimizer]:
    """``"sgd" | "adamw" | "adam"`` or an optimizer class (any callable ``(param_groups, **kw)``)."""
    if isinstance(base, str):
        try:
            return _BASES[base.lower()]
        except KeyError:
            raise SharpscopeError(
                f"unknown base optimizer {base!r}: use {', '.join(_BASES)} "
                "or pass a torch.optim.Optimizer class"
            ) from None
    if isinstance(base, torch.optim.Optimizer):
        raise SharpscopeError(
            "pass the base optimizer's class and its keyword arguments "
            f"(e.g. torch.optim.SGD, lr=0.1), not an instance ({type(base).__name__})"
        )
    if not callable(base):
        raise SharpscopeError(f"base optimizer must be a name or an optimizer class, got {base!r}")
    return base


# ----------------------------------------------------------------------------- BatchNorm
def _stat_modules(model: nn.Module | None) -> list[nn.Module]:
    """The normalisation layers of ``model`` that track running statistics.

    Walked afresh at every step (a layer swapped in after the optimizer was built is still
    seen), over the ``_modules`` dictionaries directly: ``model.modules()`` builds a name
    string and a memo entry per module, several times slower on a per-step budget. A module
    shared by two parents is listed twice, which freezing and restoring tolerate.
    """
    if model is None:
        return []
    out: list[nn.Module] = []
    stack: list[nn.Module | None] = [model]
    pop, extend, norm_base = stack.pop, stack.extend, nn.modules.batchnorm._NormBase
    while stack:
        m = pop()
        if m is None:  # a submodule slot registered as None
            continue
        if isinstance(m, norm_base) and m.track_running_stats:
            out.append(m)
        extend(m._modules.values())
    return out


def freeze_running_stats(model: nn.Module | None) -> list[nn.Module]:
    """Stop every BatchNorm/InstanceNorm of ``model`` from updating its running statistics.

    In train mode the layers still normalise with batch statistics (exactly as in a
    normal forward pass) but ``running_mean``, ``running_var`` and
    ``num_batches_tracked`` are left untouched. Returns the modules changed, for
    :func:`restore_running_stats`.
    """
    mods = _stat_modules(model)
    for m in mods:
        m.track_running_stats = False
    return mods


def restore_running_stats(mods: Iterable[nn.Module]) -> None:
    """Undo :func:`freeze_running_stats`."""
    for m in mods:
        m.track_running_stats = True


class running_stats_frozen:  # noqa: N801 - used like a function: ``with running_stats_frozen(model):``
    """Context manager form of :func:`freeze_running_stats` (a no-op when ``enabled`` is false)."""

    def __init__(self, model: nn.Module | None, enabled: bool = True) -> None:
        self.model, self.enabled, self.mods = model, enabled, []

    def __enter__(self) -> None:
        if self.enabled:
            self.mods = freeze_running_stats(self.model)

    def __exit__(self, *exc: Any) -> None:
        restore_running_stats(self.mods)
        self.mods = []


# ----------------------------------------------------------------------------- arithmetic
@torch.no_grad()
def sam_ascent_(params: list[torch.Tensor], grads: list[torch.Tensor], radius: float) -> None:
    """``params += radius * grads / (||grads|| + 1e-12)`` in place (one SAM ascent step).

    SAM and XSAM both go through this function, so XSAM with ``k = 1`` and ``alpha = 1``
    performs the very same floating-point operations as SAM.
    """
    scale = radius / (global_norm(grads) + GRAD_EPS)
    torch._foreach_add_(params, torch._foreach_mul(grads, scale))


def _grads_or_zeros(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]


class SharpnessAwareOptimizer(torch.optim.Optimizer):
    """Base class: wraps a base optimizer; subclasses define the perturbation.

    Args:
        params: an ``nn.Module`` (its trainable parameters are optimised and its
            BatchNorm layers follow ``bn_policy``), or parameters / param groups as for
            any torch optimizer (then pass ``model=`` for the BatchNorm policy to apply).
        base_optimizer: ``"sgd"``, ``"adamw"``, ``"adam"`` or an optimizer class; it is
            built as ``base_optimizer(self.param_groups, **base_kwargs)``.
        rho: radius of the ascent step (> 0; rho 0 is refused: use the base optimizer).
        bn_policy: ``"clean"`` (default): BatchNorm running statistics are updated only
            by the caller's clean pass at ``w``; the passes at perturbed weights (and
            XSAM's alpha search) leave them untouched. ``"all"``: every pass updates them.
        model: the network, when ``params`` is not the module itself. Required with
            ``bn_policy="clean"`` (the default); without it, pass ``bn_policy="all"``.
        **base_kwargs: passed to the base optimizer (``lr``, ``momentum``, ...).
    """

    name = "sharpness-aware"

    def __init__(
        self,
        params: nn.Module | Iterable[Any],
        base_optimizer: Any = "sgd",
        *,
        rho: float,
        bn_policy: str = "clean",
        model: nn.Module | None = None,
        **base_kwargs: Any,
    ) -> None:
        if isinstance(params, nn.Module):
            model = params if model is None else model
            params = [p for p in params.parameters() if p.requires_grad]
        self.rho = check_rho(self.name, rho)
        self.bn_policy = check_bn_policy(bn_policy)
        if model is None and self.bn_policy == "clean":
            raise SharpscopeError(
                f"{self.name}: bn_policy='clean' needs the model to keep the BatchNorm "
                f"statistics of the perturbed passes out: pass the model itself "
                f"({type(self).__name__}(model, ...)) or model=model with the parameters, "
                "or set bn_policy='all' explicitly"
            )
        if model is not None and not isinstance(model, nn.Module):
            raise SharpscopeError(
                f"{self.name}: model= must be the nn.Module, got {type(model).__name__}"
            )
        self.model = model
        base_cls = resolve_base_optimizer(base_optimizer)
        self.base_name = (
            base_optimizer
            if isinstance(base_optimizer, str)
            else getattr(base_optimizer, "__name__", type(base_optimizer).__name__)
        )
        self.base_kwargs = dict(base_kwargs)
        super().__init__(params, dict(base_kwargs))
        try:
            self.base_optimizer = base_cls(self.param_groups, **base_kwargs)
        except (TypeError, ValueError) as exc:
            raise SharpscopeError(f"cannot build base optimizer {self.base_name}: {exc}") from exc
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)
        self.steps_done = 0
        self.grad_hook: Callable[[list[torch.Tensor]], None] | None = None
        """Called with the parameters right before the base optimizer steps, their final
        ``.grad`` in place (distributed training averages per-rank XSAM directions here)."""
        self._active: list[torch.Tensor] | None = None
        self._theta0: list[torch.Tensor] = []
        self._frozen: list[nn.Module] = []

    # ------------------------------------------------------------------ helpers
    def _params_with_grad(self) -> list[torch.Tensor]:
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not params:
            raise SharpscopeError(
                f"{self.name}: no parameter has a gradient; run backward() before the step"
            )
        return params

    @torch.no_grad()
    def _save_theta0(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        buf = self._theta0
        if len(buf) != len(params) or any(
            b.shape != p.shape or b.dtype != p.dtype or b.device != p.device
            for b, p in zip(buf, params, strict=True)
        ):
            buf = self._theta0 = [torch.empty_like(p) for p in params]
        torch._foreach_copy_(buf, params)
        return buf

    def _freeze_bn(self) -> None:
        if self.bn_policy == "clean" and not self._frozen:
            self._frozen = freeze_running_stats(self.model)

    def _unfreeze_bn(self) -> None:
        restore_running_stats(self._frozen)
        self._frozen = []

    def perturbation(
        self, params: list[torch.Tensor], grads: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """The ascent vector ``e(w)`` added to the parameters; each subclass defines it."""
        raise TypeError(f"{type(self).__name__} does not define its perturbation e(w)")

    # ------------------------------------------------------------------ the two halves of a step
    # Undecorated helpers, called under no_grad by the public methods: a SAM step on a small
    # model costs a few hundred microseconds, so every nested ``@torch.no_grad()``,
    # ``Optimizer.zero_grad`` (a profiler record and a dict of foreach groups) and closure
    # wrapper built per step shows up in the SAM/SGD time ratio.
    def _ascend(self) -> list[torch.Tensor]:
        """Save ``w``, freeze BN stats (policy clean), move to ``w + e(w)``; returns the parameters."""
        params = self._params_with_grad()
        self._save_theta0(params)
        self._freeze_bn()
        torch._foreach_add_(params, self.perturbation(params, [p.grad for p in params]))
        self._active = params
        return params

    def _descend(self) -> None:
        """Back to ``w`` exactly (the saved copy), BN tracking restored, base optimizer step."""
        torch._foreach_copy_(self._active, self._theta0)
        params, self._active = self._active, None
        self._unfreeze_bn()
        if self.grad_hook is not None:
            self.grad_hook(params)
        self.base_optimizer.step()
        self.steps_done += 1

    def _drop_grads(self) -> None:
        """``zero_grad(set_to_none=True)`` over every parameter, without its per-call bookkeeping."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    # ------------------------------------------------------------------ two-pass API
    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Save ``w``, move to ``w + e(w)`` using the gradients in ``.grad``; freeze BN stats (policy clean)."""
        self._ascend()
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Return to ``w`` exactly, restore BN tracking and let the base optimizer step with ``.grad``."""
        if self._active is None:
            raise SharpscopeError(f"{self.name}.second_step() called without first_step()")
        self._descend()
        if zero_grad:
            self.zero_grad()

    # ------------------------------------------------------------------ closure API
    def _check_closure(self, closure: Callable[[], Any] | None) -> Callable[[], Any]:
        if closure is None:
            raise SharpscopeError(
                f"{self.name}.step() needs a closure that runs forward and backward at the current weights "
                "and returns the loss (or use first_step()/second_step())"
            )
        return closure

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One full step (davda54/sam semantics).

        The gradient at ``w`` must already be in ``.grad`` (the caller's forward and
        backward). ``closure`` runs forward and backward at the current weights and
        returns the loss; it is called once, at ``w + e(w)``, and need not zero the
        gradients (they are zeroed before it). Returns what the closure returned (the
        loss at the perturbed weights).
        """
        closure = self._check_closure(closure)
        self._ascend()
        self._drop_grads()
        try:
            with torch.enable_grad():
                loss = closure()
        except BaseException:
            self._abort()
            raise
        self._descend()
        return loss

    @torch.no_grad()
    def _abort(self) -> None:
        """Leave the model at ``w`` with BN tracking restored after a failed closure."""
        if self._active is not None:
            torch._foreach_copy_(self._active, self._theta0)
            self._active = None
        self._unfreeze_bn()

    # ------------------------------------------------------------------ state
    @property
    def hparams(self) -> dict[str, Any]:
        """The hyper-parameters as plain data (recorded in checkpoints)."""
        return {
            "base": str(self.base_name).lower(),
            "rho": self.rho,
            "bn_policy": self.bn_policy,
            **{
                k: v
                for k, v in self.base_kwargs.items()
                if isinstance(v, (int, float, str, bool, tuple, list))
            },
        }

    def _wrapper_state(self) -> dict[str, Any]:
        return {"steps_done": self.steps_done}

    def _load_wrapper_state(self, state: dict[str, Any]) -> None:
        self.steps_done = int(state.get("steps_done", 0))

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """``{"base": base optimizer state dict, "wrapper": {...}}`` (plain data)."""
        return {"base": self.base_optimizer.state_dict(), "wrapper": self._wrapper_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        if not isinstance(state_dict, dict) or "base" not in state_dict:
            raise SharpscopeError(
                f"{self.name}: not a sharpness-aware optimizer state dict "
                "(expected keys 'base' and 'wrapper')"
            )
        self.base_optimizer.load_state_dict(state_dict["base"])
        self.param_groups = self.base_optimizer.param_groups
        self._load_wrapper_state(state_dict.get("wrapper") or {})

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({hp})"
