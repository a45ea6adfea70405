"""XSAM's plane on a small MLP: where is the worst loss of the rho-ball, relative to SAM?

Trains an MLP on the bundled digits with plain gradient descent, then probes it with
:func:`sharpscope.plane.xsam_plane` (Chen & Zhou, ICLR 2026): the loss on the plane of
v0 (the ascent direction) and v1 (the gradient at the ascent point, SAM's direction),
the slerp arc between them at radius rho_max, XSAM's alpha*, and the worst point of
the ball. It checks the arc against a direct evaluation and writes ``xsam_plane.png``.

    python examples/xsam_plane.py          # SHARPSCOPE_QUICK=1 for a coarse grid
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from sharpscope.data import load_data
from sharpscope.losses import get_loss
from sharpscope.models import build_model
from sharpscope.optim.geometry import global_norm
from sharpscope.plane import plot_plane, xsam_plane
from sharpscope.reference import dense_loss

QUICK = os.environ.get("SHARPSCOPE_QUICK") == "1"
OUT = Path(os.environ.get("SHARPSCOPE_EXAMPLE_OUT", "runs/examples"))

torch.manual_seed(0)
data = load_data("digits")
model = build_model("mlp", input_shape=data.input_shape, num_classes=data.num_classes, hidden=[32])
loss_fn = get_loss("cross_entropy")
x, y = data.subset("train", 512 if QUICK else None)
opt = torch.optim.SGD(model.parameters(), lr=0.5)
for _ in range(25 if QUICK else 300):
    opt.zero_grad()
    loss_fn(model(x), y).backward()
    opt.step()

batches = data.batches("train", 512, samples=512 if QUICK else None)
before = {k: v.clone() for k, v in model.state_dict().items()}
rho, rho_max = 0.15, 0.3
res = xsam_plane(
    model,
    loss_fn,
    batches,
    rho=rho,
    rho_max=rho_max,
    steps=2,
    grid=(-0.5, 0.5, 11 if QUICK else 41),
    worst_steps=5 if QUICK else 30,
    restarts=0 if QUICK else 2,
    quiet=True,
)

# the arc at alpha = 1 is the loss at theta_0 + rho_max v1 (SAM's direction), evaluated here directly
e1, e2 = res.basis
theta0 = dict(model.named_parameters())
v1 = {n: res.v1_coords[0] * e1[n] + res.v1_coords[1] * e2[n] for n in e1}
assert abs(float(global_norm(list(v1.values()))) - 1.0) < 1e-5
with torch.no_grad():
    saved = {n: p.clone() for n, p in theta0.items()}
    for n, p in theta0.items():
        p.add_(rho_max * v1[n])
    direct = dense_loss(model, loss_fn, batches)
    for n, p in theta0.items():
        p.copy_(saved[n])
assert abs(res.loss_sam - direct) < 1e-5 * max(1.0, direct), (res.loss_sam, direct)
assert res.loss_xsam >= res.loss_sam  # alpha* maximises the arc, alpha = 1 is on it
assert (
    res.worst["loss"] >= res.loss_xsam - 1e-6
)  # the ball's worst point was started from XSAM's point
assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # model unchanged

path = OUT / "xsam_plane.png"
plot_plane(res, path)
print(
    f"psi = {res.to_dict()['psi_deg']:.1f} deg, alpha* = {res.alpha_star:g}; loss at theta_0 "
    f"{res.loss_theta0:.4f}, SAM point {res.loss_sam:.4f}, XSAM point {res.loss_xsam:.4f}, "
    f"worst of the ball {res.worst['loss']:.4f} ({res.worst['angle_to_plane_deg']:.0f} deg off the plane)"
)
print(f"wrote {path}")
