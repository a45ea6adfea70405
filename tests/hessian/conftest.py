"""Keep the backend cache of ``backend="auto"`` out of the user's home during tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_backend_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SHARPSCOPE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    from sharpscope.hessian import clear_backend_cache

    clear_backend_cache(disk=False)
    yield
    clear_backend_cache(disk=False)
