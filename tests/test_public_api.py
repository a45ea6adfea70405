"""Every name in ``sharpscope.__all__`` resolves (the heavy ones lazily)."""

from __future__ import annotations

import pytest

import sharpscope


@pytest.mark.parametrize("name", sorted(sharpscope.__all__))
def test_public_name_resolves(name: str) -> None:
    assert getattr(sharpscope, name) is not None


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        sharpscope.no_such_thing  # noqa: B018


def test_lazy_names_are_the_submodule_objects() -> None:
    from sharpscope.hessian import hessian_eigenvalues
    from sharpscope.optim import XSAM

    assert sharpscope.XSAM is XSAM
    assert sharpscope.hessian_eigenvalues is hessian_eigenvalues


def test_import_sharpscope_loads_no_heavy_module() -> None:
    """``import sharpscope`` (and so every CLI ``--help``) must not pay for torch & co."""
    import subprocess
    import sys

    code = (
        "import sys, sharpscope; "
        "print(sorted(m for m in ('torch', 'scipy', 'matplotlib', 'plotly', 'sklearn', "
        "'pyhessian', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
