"""Train an MLP on the bundled digits data with SGD, SAM and XSAM and compare test accuracy.

Each run writes a folder of checkpoints (epoch_000.pt ... final.pt, metrics.jsonl) that
the probes (``sharpscope hessian``, ``sharpscope landscape`` ...) read.

    python examples/train_digits.py            # 15 epochs each
    SHARPSCOPE_QUICK=1 python examples/train_digits.py   # 3 epochs, looser check
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from sharpscope.train import train

torch.set_num_threads(1)  # a tiny model: one thread is fastest (and safe on a busy machine)
quick = os.environ.get("SHARPSCOPE_QUICK") == "1"
epochs = 3 if quick else 15
runs = Path(tempfile.mkdtemp(prefix="sharpscope-digits-"))
settings = {
    "model": "mlp",
    "data": "digits",
    "epochs": epochs,
    "batch_size": 64,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "seed": 0,
    "device": "cpu",
    "quiet": True,
    "save_every": 5,
}
results = {}
for name, extra in [("sgd", {}), ("sam", {"rho": 0.05}), ("xsam", {"rho": 0.05})]:
    res = train(**settings, **extra, optimizer=name, out=runs / name)
    results[name] = res
    alpha = f", final alpha {res.final['alpha']:.1f}" if "alpha" in res.final else ""
    print(f"{name:5s} test accuracy {res.final['test_acc']:.4f}  ({res.seconds:.1f} s){alpha}")

floor = 0.90 if quick else 0.95
for name, res in results.items():
    assert res.final["test_acc"] >= floor, (
        f"{name}: test accuracy {res.final['test_acc']:.3f} < {floor}"
    )
    assert (runs / name / "final.pt").exists() and (runs / name / "epoch_000.pt").exists()
print(f"checkpoints in {runs}")
