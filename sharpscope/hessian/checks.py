"""Checks of a Hessian operator: products that repeat, products that are finite.

:func:`check_determinism` multiplies the same vector twice and names the cause when the
products differ (Dropout in train mode, batches that change between passes);
:func:`nonfinite_cause` says in one line why a product is not finite.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import NonFiniteLossError, SharpscopeError
from ..runtime.batches import batch_weight, nonfinite_inputs
from ..runtime.functional import probe_mode

__all__ = ["check_determinism", "nonfinite_cause"]

_DROPOUT_TYPES = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


def _active_dropout(model: nn.Module) -> list[str]:
    return [
        f"{name} ({type(m).__name__})" if name else type(m).__name__
        for name, m in model.named_modules()
        if isinstance(m, _DROPOUT_TYPES) and m.training and float(getattr(m, "p", 0.0)) > 0
    ]


def check_determinism(op: Any, *, seed: int = 0, rtol: float | None = None) -> torch.Tensor:
    """Multiply the same random vector twice and raise if the results differ.

    Random operations in the model (Dropout in train mode) or data that change
    between passes (random augmentation, a shuffling DataLoader) make the
    "Hessian" a different matrix at each product, which silently breaks Lanczos.
    Returns the vector ``v``; ``op.last_check`` keeps ``(v, H v)`` so that Lanczos
    can start from ``v`` and reuse the product. Costs two products.
    """
    if rtol is None:
        rtol = 1e-10 if op.dtype == torch.float64 else 1e-4
    g = torch.Generator().manual_seed(int(seed) + 7919)
    v = torch.randn(op.dim, generator=g, dtype=torch.float64).to(op.device, op.dtype)
    op._record_fingerprint = True
    try:
        a = op.matvec(v)
        first_print = op._fingerprint
        b = op.matvec(v)
        second_print = op._fingerprint
    finally:
        op._record_fingerprint = False
    if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
        raise NonFiniteLossError(nonfinite_cause(op))
    scale = float(torch.linalg.vector_norm(a)) + float(torch.finfo(op.dtype).tiny)
    diff = float(torch.linalg.vector_norm(a - b)) / scale
    if not np.isfinite(diff) or diff > rtol:
        dropout = _active_dropout(op.model) if op.mode == "train" else []
        if op.mode == "train" and not dropout:
            with probe_mode(op.model, "train"):
                dropout = _active_dropout(op.model)
        if dropout:
            cause = f"the model has Dropout active in train mode ({', '.join(dropout[:3])}); use mode eval"
        elif (
            first_print is not None
            and second_print is not None
            and (
                len(first_print) != len(second_print)
                or any(
                    not torch.equal(p, q) for p, q in zip(first_print, second_print, strict=False)
                )
            )
        ):
            cause = "the batches change between passes (random augmentation or shuffling?)"
        else:
            cause = "the model or the data path is not deterministic"
        raise SharpscopeError(
            f"Hessian products with the same vector differ by {diff:.3g} (relative): {cause}"
        )
    op.last_check = (v, a)
    op.checked = True
    return v


def nonfinite_cause(op: Any) -> str:
    """One line saying why a product is not finite: parameters, loss or the product itop."""
    bad = {n: int((~torch.isfinite(t)).sum()) for n, t in op._params.items()}
    bad = {n: c for n, c in bad.items() if c}
    if bad:
        count = sum(bad.values())
        names = ", ".join(f"{n} ({c})" for n, c in list(bad.items())[:3])
        more = f" and {len(bad) - 3} more tensors" if len(bad) > 3 else ""
        return (
            f"the loss/Hessian product is not finite ({count} non-finite parameters "
            f"of {op.dim}: {names}{more}); the checkpoint holds NaN/Inf weights"
        )
    bad_inputs = 0
    with torch.no_grad(), probe_mode(op.model, op.mode):
        for batch in op.batches():
            bad_inputs += nonfinite_inputs(batch)
            if bad_inputs:
                continue
            loss = op._loss(op._params, batch)
            if not bool(torch.isfinite(loss).all()):
                return (
                    f"the loss/Hessian product is not finite (0 non-finite parameters; "
                    f"the loss is {float(loss.detach().double().mean())} on a batch of "
                    f"{batch_weight(batch, op.loss_fn):g} samples): check the loss and the labels"
                )
    if bad_inputs:
        return (
            f"the loss/Hessian product is not finite (0 non-finite parameters; the data "
            f"holds {bad_inputs} non-finite input values): clean the data"
        )
    return (
        "the loss/Hessian product is not finite (0 non-finite parameters, finite data "
        "and loss): the second derivatives overflow; try a float64 model"
    )
