"""What a checkpoint records about its data: :class:`DataSpec`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DataSpec"]


@dataclass(frozen=True)
class DataSpec:
    """What a checkpoint records about its data: the spec string and the loading options."""

    spec: str = "digits"
    samples: int | None = None
    seed: int = 0
    normalize: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "samples": self.samples,
            "seed": self.seed,
            "normalize": self.normalize,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | str) -> DataSpec:
        if isinstance(d, str):
            return cls(spec=d)
        return cls(
            spec=str(d.get("spec", "digits")),
            samples=d.get("samples"),
            seed=int(d.get("seed", 0)),
            normalize=bool(d.get("normalize", True)),
        )

    def load(self) -> Any:
        """Load the data (a :class:`~sharpscope.problem.data.DataSplits`)."""
        from . import load_data

        return load_data(self.spec, samples=self.samples, seed=self.seed, normalize=self.normalize)
