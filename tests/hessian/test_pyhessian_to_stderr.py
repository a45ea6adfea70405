"""PyHessian run to a stated standard error: its own probes and products, the same stop."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sharpscope.hessian.pyhessian_compat import pyhessian_trace

from .cases import exact, loss_fn, make


@pytest.mark.parametrize("batches", [1, 3])  # one batch: its graph; several: its data loader
def test_stops_at_the_target_and_says_nothing(batches):
    model, data = make("mlp")
    data = [tuple(t.float() for t in b[:1]) + (b[1],) for b in data[:batches]]
    model = model.float()
    r = pyhessian_trace(model, loss_fn, data, rel_stderr=0.1, max_iter=3000)
    assert r["reached"] and r["stderr"] <= 0.1 * abs(r["trace"]) and r["probes"] >= 10
    assert r["hvp_count"] == r["probes"]
    if batches == 3:  # the full-data Hessian: its estimate is within 4 standard errors
        assert abs(r["trace"] - float(exact("mlp", "eval").trace())) < 4 * r["stderr"]


def test_a_budget_too_small_is_not_reached():
    model, data = make("mlp")
    r = pyhessian_trace(model.float(), loss_fn, [(data[0][0].float(), data[0][1])],
                        rel_stderr=1e-4, max_iter=12)  # fmt: skip
    assert r["probes"] == 12 and r["reached"] is False and np.isfinite(r["stderr"])


def test_its_create_graph_warning_is_silenced():
    # torch warns once per process, so a fresh one: PyHessian's data-loader products call
    # backward(create_graph=True), which must not reach the user's terminal
    code = (
        "import torch; from torch import nn; "
        "from sharpscope.hessian.pyhessian_compat import pyhessian_trace; "
        "torch.manual_seed(0); net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)); "
        "data = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(3)]; "
        "r = pyhessian_trace(net, nn.functional.cross_entropy, data, rel_stderr=0.2); "
        "print(r['probes'])"
    )
    out = subprocess.run([sys.executable, "-W", "always", "-c", code],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 10 and out.stderr == "", out.stderr
