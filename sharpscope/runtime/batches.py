"""Any batch structure a PyTorch user has: how to call the model, what the loss sees,
and how much each batch weighs.

Three batch forms are accepted everywhere (Hessian products, Lanczos, trace, density,
grids, the plane, sharpness, training and compare):

``(x, y)``
    ``model(x)``; the loss gets ``(output, y)``.
``(inputs, y)`` with ``inputs`` a mapping
    ``model(**inputs)``; the loss gets ``(output, y)``.
a mapping (Hugging Face style: ``input_ids``, ``attention_mask``, ``labels``, ...)
    ``model(**batch)`` with the keys that ``model.forward`` accepts (all of them when it
    takes ``**kwargs``); the loss gets ``(output, batch["labels"])``, or the whole batch
    for a loss that asks for it (:func:`batch_loss_fn`).

A batch's **weight** is what the mean over a data set weighs it by: the number of
samples (the length of the first dimension of the target, else of the first input), or
what the loss says (``loss_fn.weight(batch)``; the token count for a sequence loss with
an ignore index). The loss over several batches is ``sum(w_b * loss_b) / sum(w_b)``:
exactly the mean over samples (or tokens) when each ``loss_b`` is a mean over its batch.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import DataError, SharpscopeError

__all__ = [
    "LABEL_KEYS",
    "model_arguments",
    "batch_target",
    "batch_weight",
    "total_weight",
    "move_batch",
    "call_model",
    "loss_on_batch",
    "loss_of_output",
    "batch_loss_fn",
    "takes_batch",
    "output_tensor",
    "describe_batch",
    "split_pairs",
    "is_batch",
    "to_model",
    "batch_head",
    "batch_fingerprint",
    "input_bytes",
    "nonfinite_inputs",
    "split_batch",
    "join_batch",
    "sample_count",
    "signature_view",
]

LABEL_KEYS = ("labels", "label", "targets", "target", "y")


def _is_tensor(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.Tensor)


def _is_pair(batch: Any) -> bool:
    return isinstance(batch, (tuple, list)) and len(batch) == 2 and not isinstance(batch, str)


def describe_batch(batch: Any) -> str:
    """A short description of a batch for error messages (keys and shapes, no values)."""

    def one(v: Any) -> str:
        if _is_tensor(v):
            return f"tensor{list(v.shape)}"
        if isinstance(v, Mapping):
            return "{" + ", ".join(f"{k}: {one(x)}" for k, x in v.items()) + "}"
        if isinstance(v, (tuple, list)):
            return "(" + ", ".join(one(x) for x in v) + ")"
        return type(v).__name__

    return one(batch)


@functools.lru_cache(maxsize=256)
def _forward_parameters(forward: Callable[..., Any]) -> tuple[frozenset[str] | None, str]:
    """The keyword names ``forward`` accepts (None: any, it takes ``**kwargs``) and its signature."""
    try:
        sig = inspect.signature(forward)
    except (TypeError, ValueError):
        return None, "(...)"
    params = sig.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None, str(sig)
    names = frozenset(
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )
    return names, str(sig)


def _forward_of(model: Any) -> Callable[..., Any]:
    return getattr(model, "forward", model)


def model_arguments(model: Any, batch: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` to call ``model`` on ``batch`` (see the module docstring)."""
    if _is_pair(batch):
        inputs = batch[0]
        if isinstance(inputs, Mapping):
            return (), dict(inputs)
        return (inputs,), {}
    if isinstance(batch, Mapping):
        accepted, _ = _forward_parameters(_forward_of(model))
        if accepted is None:
            return (), dict(batch)
        return (), {k: v for k, v in batch.items() if k in accepted}
    if _is_tensor(batch):
        raise DataError(
            f"a batch must be (inputs, targets) or a mapping with labels; got one tensor "
            f"{describe_batch(batch)}"
        )
    raise DataError(
        f"a batch must be (inputs, targets), (mapping, targets) or a mapping; got "
        f"{describe_batch(batch)}"
    )


def batch_target(batch: Any) -> Any:
    """What a built-in loss compares the output with: ``y``, or the mapping's labels."""
    if _is_pair(batch):
        return batch[1]
    if isinstance(batch, Mapping):
        for key in LABEL_KEYS:
            if key in batch:
                return batch[key]
        return None
    raise DataError(f"cannot find the targets of a batch {describe_batch(batch)}")


def _first_dim(obj: Any) -> int | None:
    if _is_tensor(obj):
        return int(obj.shape[0]) if obj.ndim else 1
    if isinstance(obj, Mapping):
        for v in obj.values():
            n = _first_dim(v)
            if n is not None:
                return n
    if isinstance(obj, (tuple, list)) and obj:
        return _first_dim(obj[0])
    return None


def batch_weight(batch: Any, loss_fn: Any = None) -> float:
    """How much ``batch`` weighs in a mean over batches (see the module docstring)."""
    weigh = getattr(loss_fn, "weight", None)
    if callable(weigh):
        w = weigh(batch)
        return float(w.item() if _is_tensor(w) else w)
    target = batch_target(batch)
    n = _first_dim(target) if target is not None else None
    if n is None:
        n = _first_dim(batch[0] if _is_pair(batch) else batch)
    if n is None:
        raise DataError(f"cannot tell how many samples a batch holds: {describe_batch(batch)}")
    return float(n)


def total_weight(batches: Iterable[Any], loss_fn: Any = None) -> float:
    """The summed weight of ``batches``."""
    return float(sum(batch_weight(b, loss_fn) for b in batches))


def move_batch(batch: Any, device: Any = None, dtype: Any = None) -> Any:
    """``batch`` with every tensor on ``device``; floating tensors cast to ``dtype``.

    Integer tensors (labels, token ids, masks) keep their dtype.
    """
    if _is_tensor(batch):
        if dtype is not None and batch.is_floating_point():
            return batch.to(device=device, dtype=dtype)
        return batch.to(device=device) if device is not None else batch
    if isinstance(batch, Mapping):
        return {k: move_batch(v, device, dtype) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(move_batch(v, device, dtype) for v in batch)
    if isinstance(batch, list):
        return [move_batch(v, device, dtype) for v in batch]
    return batch


def output_tensor(output: Any) -> Any:
    """The tensor a built-in loss reads from a model's output (``.logits`` of a model output)."""
    if _is_tensor(output):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, Mapping):
        logits = output.get("logits")
    if logits is None and isinstance(output, (tuple, list)) and output and _is_tensor(output[0]):
        logits = output[0]
    if logits is None:
        raise SharpscopeError(
            f"the model returned {type(output).__name__}, not a tensor or an output with "
            "logits: pass --loss pkg.module:fn taking (output, batch)"
        )
    return logits


def call_model(model: Any, batch: Any, params: Mapping[str, Any] | None = None) -> Any:
    """``model`` on ``batch`` (with ``params`` in place of its parameters when given).

    A batch the model cannot take is one line naming the batch's structure and the
    model's ``forward`` signature.
    """
    args, kwargs = model_arguments(model, batch)
    try:
        if params is None:
            return model(*args, **kwargs)
        from torch.func import functional_call

        return functional_call(model, dict(params), args, kwargs, strict=False)
    except TypeError as exc:
        _, sig = _forward_parameters(_forward_of(model))
        raise SharpscopeError(
            f"the model cannot take this batch: {describe_batch(batch)} -> "
            f"{type(model).__name__}.forward{sig} ({exc})"
        ) from exc


def takes_batch(loss_fn: Any) -> bool:
    """Whether ``loss_fn`` is called as ``loss_fn(output, batch)`` (else ``(output, target)``)."""
    return bool(getattr(loss_fn, "takes_batch", False))


def batch_loss_fn(fn: Callable[[Any, Any], Any], *, name: str | None = None) -> Callable:
    """Mark a user loss ``fn(output, batch) -> mean loss`` as taking the whole batch.

    Its result is checked: a non-scalar or non-tensor result is one error line.
    """

    def loss(output: Any, batch: Any) -> Any:
        value = fn(output, batch)
        if not _is_tensor(value) or value.numel() != 1:
            what = list(value.shape) if _is_tensor(value) else type(value).__name__
            raise SharpscopeError(
                f"loss {name or getattr(fn, '__name__', 'fn')} must return a scalar tensor "
                f"(the mean loss of the batch), got {what}"
            )
        return value.reshape(())

    loss.takes_batch = True  # type: ignore[attr-defined]
    loss.__name__ = name or getattr(fn, "__name__", "loss")
    if callable(getattr(fn, "weight", None)):
        loss.weight = fn.weight  # type: ignore[attr-defined]
    return loss


def loss_on_batch(
    model: Any, loss_fn: Any, batch: Any, params: Mapping[str, Any] | None = None
) -> Any:
    """The mean loss of ``model`` (with ``params``) on one ``batch``, any batch structure."""
    return loss_of_output(loss_fn, call_model(model, batch, params), batch)


def loss_of_output(loss_fn: Any, output: Any, batch: Any) -> Any:
    """The mean loss of a model's ``output`` on ``batch`` (what :func:`loss_on_batch` returns)."""
    if takes_batch(loss_fn):
        return loss_fn(output, batch)
    target = batch_target(batch)
    if target is None:
        raise DataError(
            f"a mapping batch needs one of the keys {', '.join(LABEL_KEYS)} for a built-in "
            f"loss, got {describe_batch(batch)}; or pass --loss pkg.module:fn(output, batch)"
        )
    return loss_fn(output_tensor(output), target)


def split_pairs(batches: Sequence[Any]) -> bool:
    """True when every batch is an ``(x, y)`` pair of tensors (the fast paths' case)."""
    return all(_is_pair(b) and _is_tensor(b[0]) and _is_tensor(b[1]) for b in batches)


def _is_target_key(key: Any) -> bool:
    return key in LABEL_KEYS


def is_batch(obj: Any) -> bool:
    """Whether ``obj`` is ONE batch (``(x, y)`` of tensors, ``(mapping, y)`` or a mapping),
    as opposed to an iterable of batches."""
    if isinstance(obj, Mapping):
        return True
    return (
        _is_pair(obj)
        and (_is_tensor(obj[0]) or isinstance(obj[0], Mapping))
        and (_is_tensor(obj[1]))
    )


def to_model(batch: Any, device: Any, dtype: Any) -> Any:
    """``batch`` on ``device`` with floating *inputs* cast to ``dtype``; targets only move.

    ``(x, y)``: exactly ``x.to(device)`` (then ``.to(dtype)`` when floating) and
    ``y.to(device)``, the operators' long-standing move. Mappings: every tensor moves, the
    floating ones cast unless they sit under a label key (:data:`LABEL_KEYS`).
    """
    if _is_pair(batch) and _is_tensor(batch[0]) and _is_tensor(batch[1]):
        x, y = batch
        x = x.to(device, non_blocking=True)
        if x.is_floating_point() and x.dtype != dtype:
            x = x.to(dtype)
        return x, y.to(device, non_blocking=True)
    if _is_pair(batch) and isinstance(batch[0], Mapping):
        return (move_batch(batch[0], device, dtype), move_batch(batch[1], device))
    if isinstance(batch, Mapping):
        return {
            k: move_batch(v, device, None if _is_target_key(k) else dtype) for k, v in batch.items()
        }
    raise DataError(
        f"a batch must be (inputs, targets), (mapping, targets) or a mapping; got "
        f"{describe_batch(batch)}"
    )


def batch_head(batch: Any, n: int) -> Any:
    """The first ``n`` samples of ``batch`` (tensors sliced along their first dimension)."""
    if _is_tensor(batch):
        return batch[:n] if batch.ndim else batch
    if isinstance(batch, Mapping):
        return {k: batch_head(v, n) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(batch_head(v, n) for v in batch)
    if isinstance(batch, list):
        return [batch_head(v, n) for v in batch]
    return batch


def _tensors(batch: Any) -> list[Any]:
    if _is_tensor(batch):
        return [batch]
    if isinstance(batch, Mapping):
        return [t for v in batch.values() for t in _tensors(v)]
    if isinstance(batch, (tuple, list)):
        return [t for v in batch for t in _tensors(v)]
    return []


def batch_fingerprint(batch: Any) -> Any:
    """The float64 sums of the batch's tensors (in order): what changes when the data does."""
    import torch

    return torch.stack([t.detach().double().sum() for t in _tensors(batch)])


def input_bytes(batch: Any) -> int:
    """Bytes of the model's inputs in ``batch`` (targets not counted)."""
    return int(sum(t.numel() * t.element_size() for t in _inputs(batch)))


def _inputs(batch: Any) -> list[Any]:
    if _is_pair(batch):
        return _tensors(batch[0])
    if isinstance(batch, Mapping):
        return [t for k, v in batch.items() if not _is_target_key(k) for t in _tensors(v)]
    return _tensors(batch)


def nonfinite_inputs(batch: Any) -> int:
    """How many NaN/inf values the floating inputs of ``batch`` hold (targets not counted)."""
    import torch

    return int(
        sum(int((~torch.isfinite(t)).sum()) for t in _inputs(batch) if t.is_floating_point())
    )


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(inputs, targets)`` of a pair; ``(mapping, None)`` of a mapping batch.

    :func:`join_batch` undoes it, so code written for ``x, y`` can carry any batch.
    """
    if isinstance(batch, Mapping):
        return batch, None
    if _is_pair(batch):
        return batch[0], batch[1]
    raise DataError(
        f"a batch must be (inputs, targets), (mapping, targets) or a mapping; got "
        f"{describe_batch(batch)}"
    )


def join_batch(x: Any, y: Any) -> Any:
    """The batch :func:`split_batch` split into ``(x, y)``."""
    return x if y is None else (x, y)


def sample_count(batches: Iterable[Any]) -> int:
    """How many samples (rows) ``batches`` hold, whatever the loss weighs them by."""
    return int(sum(batch_weight(b) for b in batches))


def signature_view(batch: Any) -> tuple[Any, ...]:
    """``batch`` as a tuple of tensors whose second item has one entry per sample.

    An ``(x, y)`` pair of tensors is returned as it is; any other batch as ``(names,
    rows, *tensors)``: its keys' bytes, one zero per sample and every tensor in order.
    Fingerprints that hash ``[t for b in batches for t in b]`` and count samples with
    ``len(b[1])`` thus cover every batch structure.
    """
    import torch

    if _is_pair(batch) and _is_tensor(batch[0]) and _is_tensor(batch[1]):
        return tuple(batch)
    names = describe_batch(batch).encode()
    return (
        torch.tensor(list(names), dtype=torch.uint8),
        torch.zeros(int(batch_weight(batch)), dtype=torch.uint8),
        *_tensors(batch),
    )
