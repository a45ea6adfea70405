"""SAM/XSAM two ways: the closure API and the explicit two-pass API give identical weights.

Closure API (davda54/sam semantics): the caller's forward+backward at w fills .grad, then
``opt.step(closure)`` where ``closure`` runs forward+backward at the current weights and
returns the loss (it need not zero the gradients). Two-pass API: ``first_step`` moves to
the ascent point, the caller runs forward+backward there, ``second_step`` returns to w
and lets the base optimizer step. Running statistics of BatchNorm are updated by the
clean pass only (``bn_policy="clean"``) in both.

    python examples/sam_two_pass.py
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from sharpscope.data import load_data
from sharpscope.models import build_model
from sharpscope.optim import SAM, XSAM

torch.set_num_threads(1)  # a tiny model: one thread is fastest (and safe on a busy machine)
torch.manual_seed(0)
data = load_data("digits")
batches = data.batches("train", batch_size=64)[:10]
net = build_model("mlp", input_shape=data.input_shape, num_classes=data.num_classes, batchnorm=True)

for cls, kw in [(SAM, {"rho": 0.05}), (XSAM, {"rho": 0.05, "alpha": 0.7})]:
    a, b = copy.deepcopy(net), copy.deepcopy(net)
    opt_a = cls(a, "sgd", lr=0.1, momentum=0.9, **kw)
    opt_b = cls(b, "sgd", lr=0.1, momentum=0.9, **kw)
    for x, y in batches:
        # closure API
        opt_a.zero_grad()
        F.cross_entropy(a(x), y).backward()  # gradient at w

        def closure(a=a, x=x, y=y):
            loss = F.cross_entropy(a(x), y)
            loss.backward()
            return loss

        opt_a.step(closure)

        # two-pass API
        opt_b.zero_grad()
        F.cross_entropy(b(x), y).backward()
        opt_b.first_step(zero_grad=True)  # w -> w + e(w)
        F.cross_entropy(b(x), y).backward()  # gradient at the ascent point
        opt_b.second_step(zero_grad=True)  # back to w, base step

    same = all(
        torch.equal(p, q)
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert same, f"{cls.__name__}: the two APIs disagree"
    print(
        f"{cls.__name__}: closure API and two-pass API give identical weights after {len(batches)} steps"
    )

# XSAM with alpha = 1 and k = 1 is SAM, bit for bit
s, x1 = copy.deepcopy(net), copy.deepcopy(net)
for model, opt in [
    (s, SAM(s, "sgd", rho=0.05, lr=0.1, momentum=0.9)),
    (x1, XSAM(x1, "sgd", rho=0.05, alpha=1.0, lr=0.1, momentum=0.9)),
]:
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step(lambda m=model, x=x, y=y: F.cross_entropy(m(x), y).backward())
assert all(
    torch.equal(p, q)
    for p, q in zip(s.state_dict().values(), x1.state_dict().values(), strict=True)
)
print("XSAM(alpha=1, k=1) == SAM bit for bit")
