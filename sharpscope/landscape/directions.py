"""Directions in parameter space to cut the loss landscape along.

Four kinds, all keyed by parameter NAME (never by position):

* ``random``: seeded Gaussian directions with the normalisation of Li et al. 2018,
  "Visualizing the Loss Landscape of Neural Nets" (``filter``, ``layer`` or ``none``),
  optionally orthogonalised;
* ``eigen``: Hessian eigenvectors from ``sharpscope eigen --save-vectors``;
* ``difference``: ``theta_b - theta_a`` between two checkpoints;
* ``pca``: the top principal directions of a training trajectory (Li et al. 2018, section 7).

A :class:`Directions` object holds the RAW vectors plus the normalisation recipe.
Filter normalisation is relative to the weights, so the recipe is applied against
each model's own weights when the directions are used (:meth:`Directions.resolve`):
saving random directions once and reusing them on an SGD, a SAM and an XSAM minimum
cuts all three along equivalent directions (same Gaussian draw, each rescaled to its
own filters). BatchNorm running statistics are buffers and never part of a direction.

The pieces live in :mod:`.normalize` (normalisation, orthogonalisation),
:mod:`.vectors` (the :class:`Directions` container), :mod:`.files` (direction and
eigenvector files) and :mod:`.trajectory` (PCA of a run); this module makes the
random and difference directions and keeps every name at its 0.1 import path.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import SharpscopeError
from .files import eigen_directions, load_directions, save_directions
from .normalize import (
    IGNORES,
    NORMS,
    Params,
    model_params,
    normalize_direction,
    normalize_directions,
    orthogonalize,
)
from .trajectory import Trajectory, load_trajectory, pca_directions
from .vectors import DIRECTIONS_FORMAT, KINDS, VECTORS_FORMAT, Directions

__all__ = [
    "NORMS",
    "IGNORES",
    "KINDS",
    "DIRECTIONS_FORMAT",
    "VECTORS_FORMAT",
    "Directions",
    "normalize_direction",
    "normalize_directions",
    "orthogonalize",
    "random_directions",
    "eigen_directions",
    "difference_direction",
    "pca_directions",
    "Trajectory",
    "load_trajectory",
    "save_directions",
    "load_directions",
    "model_params",
]


def random_directions(
    weights: nn.Module | Params,
    *,
    count: int = 2,
    seed: int = 0,
    norm: str = "filter",
    ignore: str = "biasbn",
    orthogonal: bool = False,
    names: list[str] | None = None,
) -> Directions:
    """Seeded Gaussian directions (raw) with a normalisation recipe (Li et al. 2018).

    The draw is made on the CPU in float32, name by name in ``named_parameters``
    order, from ``torch.Generator().manual_seed(seed)``: the same seed gives the same
    raw directions on any device. Call :meth:`Directions.resolve` to normalise them.
    """
    if count < 1:
        raise SharpscopeError(f"direction count must be at least 1, got {count}")
    w = model_params(weights)
    keys = list(w) if names is None else list(names)
    g = torch.Generator().manual_seed(int(seed))
    vectors = [
        {n: torch.randn(tuple(w[n].shape), generator=g, dtype=torch.float32) for n in keys}
        for _ in range(count)
    ]
    return Directions(
        "random", vectors, norm=norm, ignore=ignore, seed=int(seed), orthogonal=orthogonal
    )


def difference_direction(a: nn.Module | Params, b: nn.Module | Params) -> Directions:
    """The direction ``theta_b - theta_a`` (raw, ``norm="none"``)."""
    pa, pb = model_params(a), model_params(b)
    for n, t in pa.items():
        if n not in pb:
            raise SharpscopeError(f"the second model has no parameter {n!r}")
        if t.shape != pb[n].shape:
            raise SharpscopeError(
                f"parameter {n!r} has shape {list(t.shape)} in the first model "
                f"and {list(pb[n].shape)} in the second"
            )
    return Directions(
        "difference", [{n: (pb[n].cpu().float() - t.cpu().float()) for n, t in pa.items()}]
    )
