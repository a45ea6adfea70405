"""What :func:`~sharpscope.training.train` returns (:class:`TrainResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["NO_TEST_DATA", "TrainResult"]

NO_TEST_DATA = "no test data"


@dataclass
class TrainResult:
    """What :func:`train` did: where, how long, and the per-epoch metrics."""

    out: Path
    optimizer: str
    hparams: dict[str, Any]
    epochs: int
    metrics: list[dict[str, Any]]
    seconds: float
    resumed_from: int | None = None
    alpha_history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, Any]:
        return dict(self.metrics[-1]) if self.metrics else {}

    @property
    def final_path(self) -> Path:
        return self.out / "final.pt"

    def summary(self) -> dict[str, Any]:
        """Plain-data summary (what ``sharpscope train --json`` writes)."""
        best = max(
            (m["test_acc"] for m in self.metrics if m.get("test_acc") is not None), default=None
        )
        summary = {
            "out": str(self.out),
            "optimizer": self.optimizer,
            "hparams": self.hparams,
            "epochs": self.epochs,
            "resumed_from": self.resumed_from,
            "seconds": self.seconds,
            "final": self.final,
            "best_test_acc": best,
            "final_checkpoint": str(self.final_path),
            "alpha": self.final.get("alpha"),
        }
        if self.metrics and self.final.get("test_loss") is None:
            summary["note"] = NO_TEST_DATA
        return summary
