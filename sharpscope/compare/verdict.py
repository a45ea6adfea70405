"""Is group a flatter than group b? Ratio, bootstrap interval, test and verdict word.

The model behind the per-member standard errors is in :mod:`sharpscope.compare.stats`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats as _sps

from ..errors import SharpscopeError
from .stats_checks import (
    _count,
    _fmt,
    _fmt_ci,
    _group_variance,
    _level,
    _std_errors,
    _to_dict,
    _values,
)

__all__ = ["EXACT_PERMUTATION_LIMIT", "Verdict", "compare_groups"]

#: The exact permutation test enumerates all relabelings up to this many; above it a
#: seeded Monte Carlo sample of ``n_perm`` relabelings is used.
EXACT_PERMUTATION_LIMIT = 100_000


@dataclass(frozen=True, repr=False)
class Verdict:
    """Group a relative to group b for one measure ("a is flatter than b").

    ``ratio`` is ``mean_a / mean_b`` with a percentile bootstrap interval
    ``ratio_ci``; ``diff`` is ``mean_a - mean_b`` with the interval from the same
    resamples. ``ratio``/``ratio_ci`` are ``None`` where a ratio has no direction
    (``mean_b <= 0``, or a resampled ``mean_b <= 0``); the verdict then uses
    ``diff_ci``. ``p_value`` is two-sided, from the test named in ``test_used``.
    """

    word: str
    ratio: float | None
    ratio_ci: tuple[float, float] | None
    diff: float
    diff_ci: tuple[float, float] | None
    p_value: float | None
    test_used: str
    mean_a: float
    mean_b: float
    n_a: int
    n_b: int
    level: float
    n_boot: int
    seed: int
    lower_is_flatter: bool
    note: str = ""

    def __repr__(self) -> str:
        p = "None" if self.p_value is None else f"{self.p_value:.3g}"
        return (
            f"Verdict({self.word!r}, ratio={_fmt(self.ratio)} {_fmt_ci(self.ratio_ci)}, "
            f"p={p} [{self.test_used}], n={self.n_a}/{self.n_b})"
        )

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@lru_cache(maxsize=32)
def _labelings(n_total: int, n_a: int) -> np.ndarray:
    """Every choice of the ``n_a`` members of group a among ``n_total`` (lexicographic)."""
    combos = itertools.combinations(range(n_total), n_a)
    arr = np.fromiter(itertools.chain.from_iterable(combos), dtype=np.intp)
    out = arr.reshape(-1, n_a)
    out.setflags(write=False)
    return out


def _permutation_p(
    a: np.ndarray, b: np.ndarray, *, n_perm: int, rng: np.random.Generator
) -> tuple[float, str]:
    """Two-sided permutation p-value of ``|mean_a - mean_b|`` over relabelings."""
    pooled = np.concatenate([a, b])
    n_a, n_b, n_total = a.size, b.size, a.size + b.size
    total = float(pooled.sum())
    observed = abs(float(a.mean()) - float(b.mean()))
    # Relabelings that reproduce the observed statistic up to rounding count as extreme.
    tol = 1e-12 * max(1.0, float(np.max(np.abs(pooled))))
    n_label = math.comb(n_total, n_a)
    if n_label <= EXACT_PERMUTATION_LIMIT:
        sum_a = pooled[_labelings(n_total, n_a)].sum(axis=1)
        stat = np.abs(sum_a / n_a - (total - sum_a) / n_b)
        extreme = int(np.count_nonzero(stat >= observed - tol))
        return extreme / n_label, f"permutation (exact, {n_label} relabelings)"
    perms = rng.permuted(np.broadcast_to(pooled, (n_perm, n_total)), axis=1)
    sum_a = perms[:, :n_a].sum(axis=1)
    stat = np.abs(sum_a / n_a - (total - sum_a) / n_b)
    extreme = int(np.count_nonzero(stat >= observed - tol))
    # (1 + k) / (1 + N): the observed labeling counts (Phipson & Smyth 2010), never p = 0.
    return (1 + extreme) / (1 + n_perm), f"permutation (Monte Carlo, {n_perm} relabelings)"


def _welch_p(a: np.ndarray, b: np.ndarray, a_se, b_se) -> tuple[float, str]:
    """Two-sided Welch t test with the per-member standard errors in the variances."""
    s2a, m2a = _group_variance(a, a_se)
    s2b, m2b = _group_variance(b, b_se)
    va = (s2a + m2a) / a.size
    vb = (s2b + m2b) / b.size
    d = float(a.mean() - b.mean())
    name = "welch t" + (" (with per-member se)" if a_se is not None or b_se is not None else "")
    if va + vb == 0.0:
        # Both groups constant and exact: any difference is certain, no difference is none.
        return (1.0 if d == 0.0 else 0.0), name + ", zero variance"
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    t = d / math.sqrt(va + vb)
    p = float(2.0 * _sps.t.sf(abs(t), df))
    return p, f"{name}, {df:.3g} df"


def _auto_test(n_a: int, n_b: int, alpha: float) -> str:
    """Permutation when it can reach ``p < alpha``, else Welch (needs 2 members each)."""
    n_label = math.comb(n_a + n_b, n_a)
    if n_label > EXACT_PERMUTATION_LIMIT or 2.0 / n_label < alpha:
        return "permutation"
    return "welch"


def _expanded_level(level: float, n: int) -> float:
    """Hesterberg's expanded percentile level for a bootstrap of ``n`` members.

    The plain percentile interval is too narrow for small samples twice over: the
    bootstrap variance of a mean is ``(n-1)/n`` of the sample's and it uses normal
    instead of t quantiles. The expanded interval (T. Hesterberg 2015, "What teachers
    should know about the bootstrap", The American Statistician 69:371, sec. 4.2)
    takes the percentiles at ``Phi(-sqrt(n/(n-1)) * t_{n-1, (1+level)/2})`` instead:
    at 95 % the 98.9 % percentile interval for ``n = 8`` and, for ``n = 3``, the
    extreme resamples.
    """
    q = math.sqrt(n / (n - 1.0)) * float(_sps.t.ppf(0.5 + level / 2.0, n - 1))
    return 1.0 - 2.0 * float(_sps.norm.sf(q))


def _percentile(x: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(x, [0.5 - level / 2.0, 0.5 + level / 2.0])
    return float(lo), float(hi)


def _bootstrap(
    xa: np.ndarray,
    sa: np.ndarray | None,
    xb: np.ndarray,
    sb: np.ndarray | None,
    *,
    n_boot: int,
    level: float,
    rng: np.random.Generator,
) -> tuple[tuple[float, float], tuple[float, float] | None, list[str]]:
    """Expanded-percentile bootstrap intervals of ``mean_a - mean_b`` and ``mean_a / mean_b``
    (each member resampled with its own estimator noise ``se_i * N(0, 1)``); notes."""
    boot_means = []
    for x, se in ((xa, sa), (xb, sb)):
        idx = rng.integers(0, x.size, size=(n_boot, x.size))
        draws = x[idx]
        if se is not None:
            draws = draws + se[idx] * rng.standard_normal(idx.shape)
        boot_means.append(draws.mean(axis=1))
    ba, bb = boot_means
    boot_level = _expanded_level(level, min(xa.size, xb.size))
    diff_ci = _percentile(ba - bb, boot_level)
    notes: list[str] = []
    ratio_ci = None
    if float(xb.mean()) > 0:
        if np.all(bb > 0):
            ratio_ci = _percentile(ba / bb, boot_level)
        else:
            notes.append("a resampled mean of group b is <= 0: no ratio interval")
    return diff_ci, ratio_ci, notes


def _word(
    p: float,
    alpha: float,
    ratio_ci: tuple[float, float] | None,
    diff_ci: tuple[float, float],
    a_lower: bool,
    lower_is_flatter: bool,
    notes: list[str],
) -> str:
    """``flatter``/``sharper`` when the test rejects and the interval agrees, else
    ``not distinguishable`` (a rejecting test with a disagreeing interval adds a note)."""
    if ratio_ci is not None:
        below, above = ratio_ci[1] < 1.0, ratio_ci[0] > 1.0
    else:
        below, above = diff_ci[1] < 0.0, diff_ci[0] > 0.0
    if p < alpha and ((below and a_lower) or (above and not a_lower)):
        return "flatter" if a_lower == bool(lower_is_flatter) else "sharper"
    if p < alpha:
        notes.append("the test rejects but the interval includes no difference")
    return "not distinguishable"


def _groups(a: Any, b: Any, a_se: Any, b_se: Any) -> tuple[Any, Any, Any, Any]:
    """The two groups' values and standard errors as checked arrays."""
    xa = _values(a, "group a")
    xb = _values(b, "group b")
    return xa, xb, _std_errors(a_se, xa.size, "a_se"), _std_errors(b_se, xb.size, "b_se")


def _check_seed_and_test(seed: Any, test: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SharpscopeError(f"seed must be a non-negative integer, got {seed!r}")
    if test not in ("auto", "permutation", "welch"):
        raise SharpscopeError(f"test must be 'auto', 'permutation' or 'welch', got {test!r}")


def compare_groups(
    a: Sequence[float],
    b: Sequence[float],
    *,
    a_se: Sequence[float] | None = None,
    b_se: Sequence[float] | None = None,
    lower_is_flatter: bool = True,
    level: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
    test: str = "auto",
    n_perm: int = 10_000,
) -> Verdict:
    """Is group ``a`` flatter than group ``b`` by one measure, at confidence ``level``?

    **Ratio and interval.** ``ratio = mean_a / mean_b`` with a percentile bootstrap
    interval from ``n_boot`` resamples (``numpy.random.default_rng``, first child of
    ``SeedSequence(seed)``): each group is resampled with replacement on its own, and
    where standard errors are given each resampled member gets its own estimator noise
    ``se_i * N(0, 1)`` added, so the resampled mean varies by ``s^2 (n-1)/n^2 +
    mean(se_i^2)/n``, the bootstrap version of the variance ``V`` of the module
    docstring. The difference ``mean_a - mean_b`` gets its interval from the same
    resamples. The plain percentile interval is too narrow for small groups, so the
    percentiles are taken at Hesterberg's expanded level for the smaller group's size
    ``m`` (``Phi(-sqrt(m/(m-1)) t_{m-1})``, see :func:`_expanded_level`): with
    8 lognormal members per group it covered the true ratio in 94.5-95.5 % of 200
    simulated datasets at 95 % (the plain percentile interval: 89.5-91.5 %); with
    three members it spans the extreme resamples (only ten distinct ones exist). A
    verdict also needs the test.

    **Test** (``test``: ``"auto"``, ``"permutation"``, ``"welch"``). The permutation
    test of ``|mean_a - mean_b|`` is exact (all ``C(n_a+n_b, n_a)`` relabelings, the
    observed one included) up to :data:`EXACT_PERMUTATION_LIMIT` relabelings, else it
    draws ``n_perm`` seeded relabelings (second child of ``SeedSequence(seed)``) with
    ``p = (1 + k) / (1 + n_perm)``. It assumes nothing about the distribution but
    cannot go below ``2 / C(n_a+n_b, n_a)`` (0.1 for 3 vs 3), so ``"auto"`` uses it only
    when that is below ``1 - level`` (3 vs 5, 4 vs 4 and larger at 95 %) and falls back
    to Welch's t test (normality assumed) for smaller groups. Welch's variances are
    ``s^2 + mean(se_i^2)`` per group (the standard errors enter the test); the
    permutation test sees the member values only, and the standard errors enter the
    verdict through the interval.

    **Verdict.** ``flatter``/``sharper`` when ``p < 1 - level`` *and* the ratio interval
    excludes 1 (the difference interval excludes 0 where the ratio is undefined),
    both pointing the same way; which way is flatter is ``lower_is_flatter``. Else
    ``not distinguishable``; with a one-member group ``not distinguishable (one run)``
    (no interval, no test).
    """
    level = _level(level)
    xa, xb, sa, sb = _groups(a, b, a_se, b_se)
    n_boot = _count(n_boot, "n_boot", 1)
    n_perm = _count(n_perm, "n_perm", 1)
    _check_seed_and_test(seed, test)
    alpha = 1.0 - level
    mean_a, mean_b = float(xa.mean()), float(xb.mean())
    ratio = mean_a / mean_b if mean_b > 0 else None
    common = dict(diff=mean_a - mean_b, mean_a=mean_a, mean_b=mean_b, n_a=int(xa.size))
    common.update(n_b=int(xb.size), level=level, n_boot=n_boot, seed=int(seed))
    common.update(lower_is_flatter=bool(lower_is_flatter))
    if xa.size == 1 or xb.size == 1:
        return Verdict(
            word="not distinguishable (one run)",
            ratio=ratio,
            ratio_ci=None,
            diff_ci=None,
            p_value=None,
            test_used="none (one run)",
            note="a group with one run has no spread over seeds: no interval and no test",
            **common,
        )

    boot_seq, perm_seq = np.random.SeedSequence(int(seed)).spawn(2)
    diff_ci, ratio_ci, notes = _bootstrap(
        xa, sa, xb, sb, n_boot=n_boot, level=level, rng=np.random.default_rng(boot_seq)
    )
    if ratio is None and mean_b <= 0:
        notes.append(f"mean of group b is {mean_b:.4g} <= 0: no ratio")
    kind = _auto_test(xa.size, xb.size, alpha) if test == "auto" else test
    if kind == "permutation":
        p, test_used = _permutation_p(xa, xb, n_perm=n_perm, rng=np.random.default_rng(perm_seq))
    else:
        p, test_used = _welch_p(xa, xb, sa, sb)

    return Verdict(
        word=_word(p, alpha, ratio_ci, diff_ci, mean_a < mean_b, lower_is_flatter, notes),
        ratio=ratio,
        ratio_ci=ratio_ci,
        diff_ci=diff_ci,
        p_value=float(p),
        test_used=test_used,
        note="; ".join(notes),
        **common,
    )
