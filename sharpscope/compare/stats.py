"""Is it really flatter? Verdicts over seeds, and whether flatness predicts generalisation.

A flatness measure of one training run is one number; whether optimiser A finds
flatter minima than optimiser B is a statement about the *distribution* of that
number over seeds. This module holds the statistics that turn groups of runs
into such statements (pure numpy/scipy, no torch):

* :func:`summarize`: mean, standard deviation and a t confidence interval of one
  group, with the measure's own estimator noise (Hutchinson trace, Monte Carlo
  average-case sharpness) combined with the seed spread;
* :func:`compare_groups`: ratio of means with a seeded bootstrap interval, a
  two-sided permutation test (exact when the group sizes allow it) or Welch's t
  test, and a verdict word (``flatter``, ``sharper``, ``not distinguishable``);
* :func:`kendall_with_gap`: Kendall's tau-b of a measure with a generalisation gap
  across runs, with a p-value and a Fisher-z interval.

The model behind the per-member standard errors
-----------------------------------------------
Member ``i`` of a group reports ``x_i = mu_i + e_i``: ``mu_i`` is the exact measure
of run ``i`` (random over seeds, mean ``mu``, variance ``sigma_b^2``) and ``e_i`` the
estimator's error (mean 0, variance ``se_i^2``, independent of ``mu_i`` and across
members). Then ``Var(x_i) = sigma_b^2 + se_i^2`` and, the members being independent,

    Var(mean x) = (1/n^2) sum_i (sigma_b^2 + se_i^2) = sigma_b^2 / n + mean(se_i^2) / n.

sharpscope estimates ``sigma_b^2`` by the sample variance ``s^2`` of the reported
values (``ddof=1``), so the variance used for the group mean is

    V = s^2 / n + mean(se_i^2) / n.

This is deliberately conservative: with independent estimator errors ``E[s^2] =
sigma_b^2 + mean(se_i^2)`` already contains the estimator noise once, so ``V``
overstates ``Var(mean x)`` by at most a factor 2 in expectation; with estimator
errors shared by the members (the same probe vectors or random directions for every
checkpoint, as ``compare`` does) ``s^2`` contains none of it and ``V`` is what is
needed. It never makes an interval narrower than ignoring the standard errors, and
a measure whose estimator noise is comparable to the differences between the groups
cannot produce a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _sps

from ..errors import SharpscopeError
from .stats_checks import _fmt, _fmt_ci, _group_variance, _level, _std_errors, _to_dict, _values
from .verdict import EXACT_PERMUTATION_LIMIT, Verdict, compare_groups

__all__ = [
    "EXACT_PERMUTATION_LIMIT",
    "Correlation",
    "GroupSummary",
    "Verdict",
    "compare_groups",
    "kendall_with_gap",
    "summarize",
]

#: Variance of the Fisher z transform of Kendall's tau, ``0.437 / (n - 4)``
#: (Fieller, Hartley & Pearson 1957, Biometrika 44:470).
_FIELLER_KENDALL = 0.437

WORDS = ("flatter", "sharper", "not distinguishable", "not distinguishable (one run)")


# ----------------------------------------------------------------------------- summarize


@dataclass(frozen=True, repr=False)
class GroupSummary:
    """Mean, standard deviation and confidence interval of one measure over a group of runs.

    ``std`` is the sample standard deviation of the member values (``ddof=1``);
    ``sem`` the standard error of the mean actually used for the interval,
    ``sqrt(s^2/n + mean(se_i^2)/n)`` (see the module docstring). With one member
    ``std``, ``sem`` and the interval are ``None`` and ``note`` says why.
    """

    n: int
    mean: float
    std: float | None
    sem: float | None
    ci_low: float | None
    ci_high: float | None
    level: float
    method: str
    note: str = ""

    @property
    def ci(self) -> tuple[float, float] | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_low, self.ci_high)

    def __repr__(self) -> str:
        return (
            f"GroupSummary(n={self.n}, mean={_fmt(self.mean)}, std={_fmt(self.std)}, "
            f"ci{self.level:g}={_fmt_ci(self.ci)})"
        )

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


def summarize(
    values: Sequence[float], *, std_errors: Sequence[float] | None = None, level: float = 0.95
) -> GroupSummary:
    """Mean, sample standard deviation and a ``level`` t interval of the mean of one group.

    The interval is ``mean +- t_{n-1, (1+level)/2} * sqrt(V)`` with
    ``V = s^2/n + mean(se_i^2)/n``: ``s^2`` is the sample variance (``ddof=1``) of the
    member values and ``se_i`` their own standard errors (``std_errors``, e.g. a
    Hutchinson trace's), derived in the module docstring. The degrees of freedom stay
    ``n - 1`` also when standard errors are given: the Welch-Satterthwaite degrees of
    freedom of ``V`` (the ``se_i`` taken as known) are larger, but for two or three
    members they shrink the t quantile faster than ``V`` grows, and adding an
    uncertainty must never narrow an interval. One member: no interval (``None``).
    """
    level = _level(level)
    x = _values(values, "values")
    se = _std_errors(std_errors, x.size, "std_errors")
    n = int(x.size)
    mean = float(np.mean(x))
    if n == 1:
        return GroupSummary(
            n=1,
            mean=mean,
            std=None,
            sem=None,
            ci_low=None,
            ci_high=None,
            level=level,
            method="none (one run)",
            note="one run: no spread over seeds, so no standard deviation and no interval",
        )
    s2, m2 = _group_variance(x, se)
    sem = math.sqrt(s2 / n + m2 / n)
    q = float(_sps.t.ppf(0.5 + level / 2.0, n - 1))
    method = f"t interval, {n - 1} df, variance s^2/n"
    method += " + mean(se^2)/n" if se is not None else ""
    return GroupSummary(
        n=n,
        mean=mean,
        std=math.sqrt(s2),
        sem=sem,
        ci_low=mean - q * sem,
        ci_high=mean + q * sem,
        level=level,
        method=method,
    )


# ----------------------------------------------------------------------------- Kendall


@dataclass(frozen=True, repr=False)
class Correlation:
    """Kendall's tau-b of one measure with a generalisation gap across runs."""

    tau: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    n: int
    level: float
    method: str
    note: str = ""

    def __repr__(self) -> str:
        p = "None" if self.p_value is None else f"{self.p_value:.3g}"
        return f"Correlation(tau={_fmt(self.tau)} {_fmt_ci(self.ci)}, p={p}, n={self.n})"

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


def kendall_with_gap(
    measure_values: Sequence[float], gaps: Sequence[float], *, level: float = 0.95
) -> Correlation:
    """Does flatness predict generalisation here? Kendall's tau-b of a measure with a gap.

    ``gaps`` is one number per run, e.g. test loss minus train loss, or test error.
    ``tau`` is tau-b (ties in either variable corrected) and ``p_value`` the two-sided
    p-value of ``scipy.stats.kendalltau`` (exact for small samples without ties, else
    the normal approximation). The interval is a Fisher-z interval:
    ``tanh(atanh(tau) +- z_{(1+level)/2} * sqrt(0.437 / (n - 4)))`` (the variance
    approximation of Fieller, Hartley & Pearson 1957), so it needs ``n >= 5`` and
    ``|tau| < 1``; otherwise it is ``None`` and ``note`` says why. A constant input has
    no tau (``None``).
    """
    level = _level(level)
    x = _values(measure_values, "measure_values")
    y = _values(gaps, "gaps")
    if x.size != y.size:
        raise SharpscopeError(
            f"measure_values has {x.size} runs but gaps has {y.size}: one gap per run"
        )
    n = int(x.size)
    if n < 2:
        raise SharpscopeError(f"a correlation needs at least 2 runs, got {n}")
    method = "kendall tau-b (scipy.stats.kendalltau); ci: Fisher z, var 0.437/(n-4)"
    if np.all(x == x[0]) or np.all(y == y[0]):
        which = "measure_values" if np.all(x == x[0]) else "gaps"
        return Correlation(
            tau=None,
            ci=None,
            p_value=None,
            n=n,
            level=level,
            method=method,
            note=f"{which} is constant over the {n} runs: no correlation",
        )
    res = _sps.kendalltau(x, y)
    tau, p = float(res[0]), float(res[1])
    ci = None
    note = ""
    if n < 5:
        note = f"no interval: the Fisher-z interval needs at least 5 runs, got {n}"
    elif abs(tau) >= 1.0 - 1e-12:
        note = "no interval: |tau| = 1, where the Fisher-z approximation degenerates"
    else:
        half = float(_sps.norm.ppf(0.5 + level / 2.0)) * math.sqrt(_FIELLER_KENDALL / (n - 4))
        z = math.atanh(tau)
        ci = (math.tanh(z - half), math.tanh(z + half))
    return Correlation(tau=tau, ci=ci, p_value=p, n=n, level=level, method=method, note=note)
