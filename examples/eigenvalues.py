"""Top Hessian eigenvalues of a small network, checked against the dense Hessian.

Lanczos (sharpscope.hessian) finds the top eigenvalues of a tiny MLP on the digits
data; we check them against ``numpy.linalg.eigvalsh`` of the dense float64 Hessian
and check that Lanczos needed fewer Hessian-vector products than power iteration
to reach the top eigenvalue to the same accuracy.
"""

import os

import numpy as np
import torch

from sharpscope.data import load_data
from sharpscope.hessian import hessian_eigenvalues
from sharpscope.losses import get_loss
from sharpscope.models import build_model
from sharpscope.reference import dense_hessian

quick = os.environ.get("SHARPSCOPE_QUICK") == "1"
torch.manual_seed(0)
data = load_data("digits")
x, y = data.subset("train", 128 if quick else 512, seed=0)
batches = [(x[i : i + 128].double(), y[i : i + 128]) for i in range(0, len(y), 128)]
model = build_model("mlp", input_shape=data.input_shape, num_classes=10, hidden=[8]).double()
loss_fn = get_loss("cross_entropy")

k = 3
result = hessian_eigenvalues(model, loss_fn, batches, k=k, tol=1e-8, backend="double")
H = dense_hessian(model, loss_fn, batches).numpy()
exact = np.linalg.eigvalsh(H)[::-1][:k]
print("Lanczos:", result.eigenvalues.numpy(), f"({result.lanczos_products} products)")
print("dense  :", exact)
assert np.allclose(result.eigenvalues.numpy(), exact, rtol=1e-7)

# power iteration for the top eigenvalue alone, to the same relative accuracy
v = np.random.default_rng(0).standard_normal(H.shape[0])
power_products = 0
while abs(v @ H @ v / (v @ v) - exact[0]) > 1e-8 * exact[0]:
    v = H @ v
    v /= np.linalg.norm(v)
    power_products += 1
print(f"power iteration needed {power_products} products for the top eigenvalue alone")
assert result.lanczos_products < power_products
