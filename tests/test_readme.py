"""The README's Python snippets run as written (on a tiny model), so they never rot.

Each ```python block is executed in a fresh namespace holding the few names the
README assumes a user already has: ``model``, ``loss_fn``, ``batches``, ``epochs``
and ``net``. The ``compare`` snippet needs two trained runs and minutes of probes:
it is covered by ``examples/compare_minima.py`` (run by test_examples.py) and here
only checked to name real functions.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def _namespace() -> dict:
    from sharpscope import build_model, get_loss, load_data

    torch.manual_seed(0)
    data = load_data("digits")
    model = build_model("mlp", input_shape=data.input_shape, num_classes=10, hidden=[16])
    return {
        "model": model,
        "loss_fn": get_loss("cross_entropy"),
        "batches": data.batches("train", 64, samples=128),
        "epochs": 1,
        "net": build_model("mlp", input_shape=data.input_shape, num_classes=10),
    }


def test_readme_has_python_snippets() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_snippet_runs(index: int, tmp_path, monkeypatch) -> None:
    code = BLOCKS[index]
    monkeypatch.chdir(tmp_path)
    if "from sharpscope.compare import compare" in code:
        from sharpscope.compare import ComparisonReport, compare

        assert callable(compare)
        assert hasattr(ComparisonReport, "value") and hasattr(ComparisonReport, "flattest")
        assert hasattr(ComparisonReport, "verdict")  # the groups snippet
        return
    exec(compile(code, f"README.md block {index}", "exec"), _namespace())  # noqa: S102
