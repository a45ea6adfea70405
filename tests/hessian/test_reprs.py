"""Printed results stay short (estimate ± se, method, cost), and the SLQ trace has an error bar."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sharpscope.hessian.density import DensityResult
from sharpscope.hessian.result import EigenResult
from sharpscope.hessian.trace._common import TraceResult


def _trace() -> TraceResult:
    samples = [float(v) for v in np.linspace(10.0, 20.0, 99)]
    return TraceResult(
        trace=15.0,
        stderr=0.3,
        trace_h2=400.0,
        stderr_h2=12.0,
        method="hutchinson",
        probes=99,
        hvp_count=99,
        seconds=0.1,
        samples=samples,
    )


def _density(runs: int) -> DensityResult:
    nodes = np.array([[1.0, 2.0], [3.0, 4.0]])[:runs]
    weights = np.array([[0.5, 0.5], [0.25, 0.75]])[:runs]
    grid = np.linspace(0, 5, 11)
    return DensityResult(
        nodes=nodes,
        weights=weights,
        grid=grid,
        density=np.ones_like(grid) / 5,
        sigma=0.1,
        runs=runs,
        iters=2,
        hvp_count=4,
        seconds=0.0,
        dim=10,
    )


def test_trace_repr_is_short_and_gives_the_error_not_the_probe_values():
    r = _trace()
    text = repr(r)
    assert len(text) < 200
    assert "15 ± 0.3" in text and "hutchinson" in text and "hvp_count=99" in text
    assert str(r.samples[1]) not in text  # no probe dump
    page = r._repr_html_()
    assert page.startswith("<table>") and page.endswith("</table>") and "15 ± 0.3" in page
    assert r.to_dict()["probe_values"] == r.samples  # the file keeps every value


def test_density_trace_stderr_is_the_spread_of_the_runs_traces():
    r = _density(2)
    # hand-computed: run traces 10 * (0.5 + 1) = 15 and 10 * (0.75 + 3) = 37.5
    assert r.trace_runs().tolist() == [15.0, 37.5]
    assert r.moment(1) * r.dim == pytest.approx(26.25)
    se = math.sqrt(((15 - 26.25) ** 2 + (37.5 - 26.25) ** 2) / 1) / math.sqrt(2)
    assert r.trace_stderr == pytest.approx(se) and se == pytest.approx(11.25)
    assert r.to_dict()["trace_stderr"] == pytest.approx(11.25)
    assert "26.25 ± 11" in repr(r) and len(repr(r)) < 200
    assert r._repr_html_().startswith("<table>")
    one = _density(1)
    assert one.trace_stderr is None and one.to_dict()["trace_stderr"] is None


def test_density_trace_stderr_on_a_real_slq_run_matches_its_runs():
    from sharpscope.hessian.density import spectral_density

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    r = spectral_density(model, torch.nn.functional.cross_entropy, [(x, y)], runs=4, iters=6)
    t = r.trace_runs()
    assert t.mean() == pytest.approx(r.moment(1) * r.dim)
    assert r.trace_stderr == pytest.approx(float(np.std(t, ddof=1) / 2.0))


def test_eigen_repr_html_and_mode_note():
    r = EigenResult(
        eigenvalues=torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0], dtype=torch.float64),
        residuals=torch.full((5,), 1e-7, dtype=torch.float64),
        which="largest",
        hvp_count=120,
        lanczos_products=100,
        converged=True,
        seconds=0.5,
        tol=1e-6,
        eigenvectors=torch.zeros(5, 10_000),
        mode="train",
    )
    text = repr(r)
    assert len(text) < 200 and "[5, 4, 3, 2, ...]" in text and "hvp_count=120" in text
    assert "tensor" not in text
    assert r._repr_html_().startswith("<table>")
    assert r.mode_note.startswith("train mode:") and "BatchNorm" in r.mode_note
