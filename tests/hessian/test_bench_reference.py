"""The Hessian benchmark's tight reference agrees with a dense Hessian (not timed)."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import torch

from sharpscope.reference import dense_hessian


def test_benchmark_reference_matches_dense_hessian():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_hessian.py"
    spec = importlib.util.spec_from_file_location("bench_hessian", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model, batch = bench.make_case("mlp-digits", torch.device("cpu"), samples=64, quick=True)
    ref = bench.reference(model, batch, k=3, max_products=120)
    x, y = batch[0]
    H = dense_hessian(copy.deepcopy(model).double(), bench.LOSS, (x.double(), y))
    exact = torch.linalg.eigvalsh(H).flip(0)[:3]
    torch.testing.assert_close(
        torch.tensor(ref["eigenvalues"], dtype=torch.float64), exact, rtol=2e-5, atol=0
    )
