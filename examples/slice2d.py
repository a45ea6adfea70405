"""A 2D filter-normalised loss slice around a small model trained on digits (Li et al. 2018).

Run: python examples/slice2d.py   (SHARPSCOPE_QUICK=1 for a few-second version)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from sharpscope import build_model, get_loss, load_data
from sharpscope.landscape import evaluate_grid, evaluate_point, random_directions
from sharpscope.landscape.plots import plot_contour

quick = os.environ.get("SHARPSCOPE_QUICK") == "1"
torch.manual_seed(0)
data = load_data("digits")
model = build_model(
    "cnn", input_shape=data.input_shape, num_classes=data.num_classes, channels=[8, 16]
)
loss_fn = get_loss("cross_entropy")
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for _ in range(2 if quick else 15):
    for x, y in data.loader("train", 64, shuffle=True):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

batches = data.batches("train", 512, samples=256 if quick else None)
model.eval()
loss, acc = evaluate_point(model, loss_fn, batches)
dirs = random_directions(model, count=2, seed=0, norm="filter", ignore="biasbn", orthogonal=True)
axis = np.linspace(-1, 1, 5 if quick else 25)
surface = evaluate_grid(model, loss_fn, batches, dirs.resolve(model), [axis, axis], quiet=True)

assert abs(surface.value_at_center("loss") - loss) < 1e-5 * max(1.0, loss), (
    "centre must be the model's loss"
)
assert surface.summary()["min_loss"] <= loss + 1e-6
out = Path(os.environ.get("SHARPSCOPE_EXAMPLE_OUT", tempfile.mkdtemp())) / "slice2d.png"
plot_contour(surface, out, title=f"digits CNN: loss {loss:.3f}, accuracy {acc:.2%}")
assert out.stat().st_size > 0
print(
    f"centre loss {loss:.4f} (accuracy {acc:.2%}); surface from {surface.summary()['min_loss']:.4f} "
    f"to {surface.summary()['max_loss']:.4f}; contour written to {out}"
)
