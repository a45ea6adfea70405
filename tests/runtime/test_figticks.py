"""Number labels of figures between 1e-4 and 1e-3 (matplotlib asked for 0.00056 and crashed)."""

from __future__ import annotations

import numpy as np
import pytest

from sharpscope.runtime.figticks import format_number


@pytest.mark.parametrize(
    ("value", "plain", "mathtext", "html"),
    [
        (0.00056, "5.6e-4", "$5.6\\times10^{-4}$", "5.6×10<sup>-4</sup>"),
        (0.0001, "1e-4", "$10^{-4}$", "10<sup>-4</sup>"),
        (-0.000123, "-1.23e-4", "$-1.23\\times10^{-4}$", "-1.23×10<sup>-4</sup>"),
        (0.00099996, "1e-3", "$10^{-3}$", "10<sup>-3</sup>"),  # rounds up to the next power
    ],
)
def test_small_numbers_below_one_thousandth(value, plain, mathtext, html):
    assert format_number(value) == plain
    assert format_number(value, markup="mathtext") == mathtext
    assert format_number(value, markup="html") == html


def test_scientific_labels_read_back_as_three_significant_digits():
    rng = np.random.default_rng(0)
    exponents = np.concatenate([rng.uniform(-12, -3, 400), rng.uniform(5, 15, 200)])
    for v in 10.0**exponents * rng.choice([-1.0, 1.0], exponents.size):
        label = format_number(v)
        assert float(label) == float(f"{v:.3g}"), (v, label)
