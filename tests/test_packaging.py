"""The wheel must ship every sub-package (the package list in pyproject.toml is explicit)."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "sharpscope").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    found.add("sharpscope_cli")
    assert found <= listed, f"add to pyproject.toml packages: {sorted(found - listed)}"
    assert listed <= found, f"listed but missing: {sorted(listed - found)}"


def test_console_script_points_at_the_cli() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["project"]["scripts"]["sharpscope"] == "sharpscope_cli.app:main"
    assert (ROOT / "cli" / "app.py").is_file()
