"""Quickstart: train a small MLP on the bundled digits, save a checkpoint, reload it, check it.

Run with ``python examples/quickstart.py`` (``SHARPSCOPE_QUICK=1`` for a few steps).
The checkpoint lands in ``runs/quickstart/final.pt``; inspect it with
``sharpscope info runs/quickstart/final.pt``.
"""

from __future__ import annotations

import os

import torch

from sharpscope.checkpoint import save_checkpoint
from sharpscope.data import load_data
from sharpscope.losses import get_loss
from sharpscope.models import ModelSpec, build_model
from sharpscope.problem import load_problem
from sharpscope.reference import dense_loss

QUICK = os.environ.get("SHARPSCOPE_QUICK") == "1"
STEPS = 20 if QUICK else 300

torch.manual_seed(0)
data = load_data("digits")  # 1438 train / 359 test 8x8 images, standardised
spec = ModelSpec("mlp", {"hidden": [32]})
model = build_model(spec, input_shape=data.input_shape, num_classes=data.num_classes)
loss_fn = get_loss("cross_entropy")

# plain full-batch gradient descent: the library does not care how a model was trained
opt = torch.optim.SGD(model.parameters(), lr=0.5)
first = None
for _ in range(STEPS):
    opt.zero_grad()
    loss = loss_fn(model(data.x_train), data.y_train)
    loss.backward()
    opt.step()
    first = loss.item() if first is None else first

train_loss = dense_loss(model, loss_fn, (data.x_train, data.y_train))
with torch.no_grad():
    test_acc = float((model(data.x_test).argmax(1) == data.y_test).float().mean())
print(f"{STEPS} steps: train loss {first:.3f} -> {train_loss:.3f}, test accuracy {test_acc:.3f}")
assert train_loss < first, "training should lower the loss"

path = save_checkpoint(
    "runs/quickstart/final.pt",
    model=model,
    model_spec=spec,
    input_shape=data.input_shape,
    num_classes=data.num_classes,
    data_spec=data.spec,
    optimizer={"name": "sgd", "hparams": {"lr": 0.5}},
    seed=0,
    metrics=[{"step": STEPS, "train_loss": train_loss, "test_acc": test_acc}],
)

problem = load_problem(path, device="cpu")  # safe load, same model, same (normalised) data
reloaded = dense_loss(problem.model, problem.loss_fn, problem.batches("train", batch_size=512))
print(f"saved {path}; reloaded train loss {reloaded:.6f}")
assert abs(reloaded - train_loss) < 1e-5, (reloaded, train_loss)
assert problem.checkpoint.final_metrics["test_acc"] == test_acc
