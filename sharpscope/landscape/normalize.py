"""Direction normalisation (Li et al. 2018) and block-wise orthogonalisation, by parameter name.

Filter normalisation is relative to the weights, so it is applied against each
model's own weights when directions are used (:meth:`~.vectors.Directions.resolve`).

A *filter* is a slice along dim 0 of a parameter of two or more dimensions, so for
every kind of layer it is one output unit (one row), each rescaled to the norm of
the matching row of the weights:

* Conv weights ``(out, in, kh, kw)``: one filter per output channel (Li et al.);
* Linear weights ``(out, in)``, including attention's q/k/v/output projections and
  the MLP of a Transformer block: one per output unit;
* token embeddings ``(vocab, width)``: one per token row; learned position
  embeddings ``(context, width)``: one per position row;
* 1-D tensors (biases, BatchNorm and LayerNorm weights and biases) are not filters:
  zero with ``ignore="biasbn"``, else the weights themselves (``d = w``, as Li et
  al. treat BatchNorm; so ``||d|| = ||w||``).

Parameters are keyed by name (``named_parameters``, which lists a shared tensor
once), so a head tied to the embedding is one parameter, drawn and rescaled once.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import SharpscopeError

__all__ = [
    "NORMS",
    "IGNORES",
    "model_params",
    "normalize_direction",
    "normalize_directions",
    "orthogonalize",
]

NORMS = ("filter", "layer", "none")
IGNORES = ("biasbn", "none")

Params = dict[str, torch.Tensor]


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise SharpscopeError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")
    return value


def model_params(model: nn.Module | Params) -> Params:
    """``{name: detached tensor}`` of a model's trainable parameters (a dict passes through)."""
    if isinstance(model, nn.Module):
        return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    return {n: t.detach() for n, t in model.items()}


# ----------------------------------------------------------------------------- normalisation
def normalize_direction(
    d: torch.Tensor, w: torch.Tensor, *, norm: str = "filter", ignore: str = "biasbn"
) -> torch.Tensor:
    """Rescale one direction tensor ``d`` against its weight tensor ``w`` (returns a new tensor).

    Replicates ``net_plotter.normalize_directions_for_weights`` of Li et al. 2018,
    "Visualizing the Loss Landscape of Neural Nets":

    * ``d.dim() <= 1`` (biases, BatchNorm weights and biases): set to zero when
      ``ignore="biasbn"``, otherwise set to the weights themselves (``d = w``);
    * ``norm="filter"``: each filter ``d[i]`` (slice along dim 0) becomes
      ``d[i] * ||w[i]|| / (||d[i]|| + 1e-10)``;
    * ``norm="layer"``: the whole tensor becomes ``d * ||w|| / (||d|| + 1e-10)``;
    * ``norm="none"``: ``d`` is returned unchanged, except that 1-D tensors are
      zeroed when ``ignore="biasbn"`` (Li et al. copy ``w`` into 1-D entries even
      here; sharpscope keeps raw means raw).
    """
    _check_choice(norm, NORMS, "normalisation")
    _check_choice(ignore, IGNORES, "ignore option")
    if d.shape != w.shape:
        raise SharpscopeError(
            f"direction shape {list(d.shape)} does not match weight shape {list(w.shape)}"
        )
    d = d.to(dtype=w.dtype, device=w.device)
    if d.dim() <= 1:
        if ignore == "biasbn":
            return torch.zeros_like(w)
        return d.clone() if norm == "none" else w.detach().clone()
    if norm == "none":
        return d.clone()
    if norm == "layer":
        return d * (w.norm() / (d.norm() + 1e-10))
    dn = d.reshape(d.shape[0], -1).norm(dim=1)
    wn = w.reshape(w.shape[0], -1).norm(dim=1)
    scale = (wn / (dn + 1e-10)).reshape(-1, *([1] * (d.dim() - 1)))
    return d * scale


def normalize_directions(
    direction: Params, weights: Params, *, norm: str = "filter", ignore: str = "biasbn"
) -> Params:
    """:func:`normalize_direction` applied to every named tensor of ``direction``."""
    return {
        n: normalize_direction(d, weights[n], norm=norm, ignore=ignore)
        for n, d in direction.items()
    }


def _blocks(t: torch.Tensor, norm: str) -> torch.Tensor:
    """View ``t`` as rows that are the normalisation blocks: filters, the whole tensor."""
    if norm == "filter" and t.dim() > 1:
        return t.reshape(t.shape[0], -1)
    return t.reshape(1, -1)


def orthogonalize(
    d1: Params, d2: Params, weights: Params, *, norm: str = "filter", ignore: str = "biasbn"
) -> Params:
    """Gram-Schmidt of ``d2`` against ``d1`` after normalisation, keeping ``d2`` normalised.

    Both inputs are already normalised. The projection is done block by block,
    where the blocks are the normalisation units: each filter for ``filter``, each
    tensor for ``layer``, the whole vector for ``none``. In every block
    ``d2_b <- d2_b - (<d1_b, d2_b> / <d1_b, d1_b>) d1_b`` and then ``d2_b`` is
    rescaled to its norm before the projection (for ``filter``/``layer`` that is the
    weight's norm again). Orthogonal blocks sum to orthogonal vectors, and rescaling a
    block keeps it orthogonal, so the result is exactly orthogonal to ``d1`` AND keeps
    its normalisation: the plane is not skewed and neither axis is shrunk. Blocks
    where ``d1`` is zero are left as they are; blocks where ``d2`` is parallel to
    ``d1`` (e.g. 1-D tensors set to ``w`` in both with ``ignore="none"``) become zero.
    """
    _check_choice(norm, NORMS, "normalisation")
    out: Params = {}
    for n, b in d2.items():
        a = d1.get(n)
        if a is None:
            out[n] = b.clone()
            continue
        ab, bb = _blocks(a, norm).double(), _blocks(b, norm).double()
        aa = (ab * ab).sum(dim=1, keepdim=True)
        proj = torch.where(aa > 0, (ab * bb).sum(dim=1, keepdim=True) / aa.clamp_min(1e-300), 0.0)
        before = bb.norm(dim=1, keepdim=True)
        nb = bb - proj * ab
        after = nb.norm(dim=1, keepdim=True)
        nb = torch.where(
            after > 1e-12 * before.clamp_min(1e-300), nb * (before / after.clamp_min(1e-300)), 0.0
        )
        out[n] = nb.reshape(b.shape).to(b.dtype)
    return out
