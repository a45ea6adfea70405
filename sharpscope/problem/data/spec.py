"""What a checkpoint records about its data: :class:`DataSpec`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DataSpec"]


def _floats(v: Any) -> tuple[float, ...] | None:
    if v is None:
        return None
    if hasattr(v, "tolist"):
        v = v.tolist()
    return tuple(float(x) for x in v)


@dataclass(frozen=True)
class DataSpec:
    """What a checkpoint records about its data: the spec string and the loading options.

    ``normalize`` is ``True`` (standardise per channel), ``False`` (the data as stored) or
    a fixed ``"M1,../S1,.."`` string (:mod:`~sharpscope.problem.data.normalization`).
    ``mean``/``std``: the statistics the data were standardised with (stored in new
    checkpoints so that they are never recomputed); ``resolved``: the spec with its file
    path made absolute. :meth:`to_dict` keeps 0.1's four keys (a resume compares them);
    :meth:`checkpoint_dict` adds the statistics and the resolved path.
    """

    spec: str = "digits"
    samples: int | None = None
    seed: int = 0
    normalize: bool | str = True
    mean: tuple[float, ...] | None = field(default=None, compare=False)
    std: tuple[float, ...] | None = field(default=None, compare=False)
    resolved: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "samples": self.samples,
            "seed": self.seed,
            "normalize": self.normalize,
        }

    def checkpoint_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` plus ``mean``/``std`` and ``resolved`` when known."""
        d = self.to_dict()
        if self.mean is not None and self.std is not None:
            d.update(mean=list(self.mean), std=list(self.std))
        if self.resolved is not None and self.resolved != self.spec:
            d["resolved"] = self.resolved
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | str) -> DataSpec:
        if isinstance(d, str):
            return cls(spec=d)
        normalize = d.get("normalize", True)
        resolved = d.get("resolved")
        return cls(
            spec=str(d.get("spec", "digits")),
            samples=d.get("samples"),
            seed=int(d.get("seed", 0)),
            normalize=normalize if isinstance(normalize, str) else bool(normalize),
            mean=_floats(d.get("mean")),
            std=_floats(d.get("std")),
            resolved=str(resolved) if isinstance(resolved, str) else None,
        )

    def load(self) -> Any:
        """Load the data (a :class:`~sharpscope.problem.data.DataSplits`)."""
        from . import load_data

        return load_data(self)
