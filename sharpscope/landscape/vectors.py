"""The :class:`Directions` container: raw direction vectors plus their normalisation recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import SharpscopeError
from ..runtime.files import atomic_torch_save
from .normalize import (
    IGNORES,
    NORMS,
    Params,
    _check_choice,
    model_params,
    normalize_directions,
    orthogonalize,
)

__all__ = ["KINDS", "DIRECTIONS_FORMAT", "VECTORS_FORMAT", "Directions"]

KINDS = ("random", "eigen", "difference", "pca")
DIRECTIONS_FORMAT = "sharpscope-directions"
VECTORS_FORMAT = "sharpscope-vectors"


@dataclass
class Directions:
    """Raw direction vectors plus the recipe that turns them into usable directions.

    Attributes:
        kind: ``random``, ``eigen``, ``difference`` or ``pca``.
        vectors: the raw vectors, one ``{name: tensor}`` dict each (CPU tensors).
        norm, ignore: the normalisation recipe applied by :meth:`resolve`.
        seed: the random seed (``random`` kind).
        orthogonal: orthogonalise the second direction against the first on use.
        meta: anything else (eigenvalues, explained variance, sources).
    """

    kind: str
    vectors: list[Params]
    norm: str = "none"
    ignore: str = "none"
    seed: int | None = None
    orthogonal: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_choice(self.kind, KINDS, "direction kind")
        _check_choice(self.norm, NORMS, "normalisation")
        _check_choice(self.ignore, IGNORES, "ignore option")
        if not self.vectors:
            raise SharpscopeError("a Directions object needs at least one vector")

    @property
    def names(self) -> list[str]:
        return list(self.vectors[0])

    @property
    def shapes(self) -> dict[str, list[int]]:
        return {n: list(t.shape) for n, t in self.vectors[0].items()}

    def __len__(self) -> int:
        return len(self.vectors)

    def check_compatible(self, weights: Params, *, where: str = "the model") -> None:
        """Raise a one-line error naming the first parameter missing or of another shape."""
        for n, shape in self.shapes.items():
            if n not in weights:
                raise SharpscopeError(
                    f"directions name parameter {n!r} which {where} does not have"
                )
            if list(weights[n].shape) != shape:
                raise SharpscopeError(
                    f"directions do not fit {where}: parameter {n!r} has shape {list(weights[n].shape)} "
                    f"but the directions have {shape}"
                )

    def resolve(self, weights: nn.Module | Params, *, count: int | None = None) -> list[Params]:
        """The usable directions for the model with these ``weights``.

        Each raw vector is normalised against ``weights`` (:func:`normalize_direction`),
        then, if ``orthogonal``, every later direction is orthogonalised against the
        earlier ones (:func:`orthogonalize`). Results live on the weights' device and dtype.
        """
        w = model_params(weights)
        self.check_compatible(w)
        vecs = self.vectors[: count or len(self.vectors)]
        out: list[Params] = []
        for v in vecs:
            d = normalize_directions(v, {n: w[n] for n in v}, norm=self.norm, ignore=self.ignore)
            if self.orthogonal:
                for prev in out:
                    d = orthogonalize(prev, d, w, norm=self.norm, ignore=self.ignore)
            out.append(d)
        return out

    def subset(self, indices: list[int]) -> Directions:
        return Directions(
            self.kind,
            [self.vectors[i] for i in indices],
            self.norm,
            self.ignore,
            self.seed,
            self.orthogonal,
            dict(self.meta),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": DIRECTIONS_FORMAT,
            "version": 1,
            "kind": self.kind,
            "norm": self.norm,
            "ignore": self.ignore,
            "seed": self.seed,
            "names": self.names,
            "shapes": self.shapes,
            "directions": [
                {n: t.detach().cpu().clone() for n, t in v.items()} for v in self.vectors
            ],
            "meta": {**self.meta, "orthogonal": bool(self.orthogonal)},
        }

    def save(self, path: str | Path) -> Path:
        """Write the plain-data directions file (loads with ``weights_only=True``)."""
        path = Path(path)
        atomic_torch_save(self.to_dict(), path)
        return path
