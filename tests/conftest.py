"""Shared fixtures: tiny float64 problems, a temporary working folder, CPU determinism."""

from __future__ import annotations

import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True, scope="session")
def _private_user_cache(tmp_path_factory):
    """Keep sharpscope's user cache (the auto backend's timings) out of the home folder,
    for this process and the CLI subprocesses the tests start."""
    old = os.environ.get("SHARPSCOPE_CACHE_DIR")
    os.environ["SHARPSCOPE_CACHE_DIR"] = str(tmp_path_factory.mktemp("user-cache"))
    yield
    if old is None:
        os.environ.pop("SHARPSCOPE_CACHE_DIR", None)
    else:
        os.environ["SHARPSCOPE_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
    # One intra-op thread: the test models are tiny, and spinning threads on a busy
    # 2-core machine made them 10-50x slower.
    torch.set_num_threads(1)


@pytest.fixture
def cli_runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture
def cli_app():
    from sharpscope_cli.app import app

    return app
