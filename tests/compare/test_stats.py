"""sharpscope.stats against hand-computed values, scipy, and seeded simulations."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats as sps

import sharpscope.compare.verdict as vt
from sharpscope.compare.stats import compare_groups, kendall_with_gap, summarize
from sharpscope.errors import SharpscopeError

# --------------------------------------------------------------------------- summarize


def test_summarize_mean_std_and_t_interval_by_hand() -> None:
    # values 1, 2, 4: mean 7/3; deviations -4/3, -1/3, 5/3; squares 16/9 + 1/9 + 25/9 = 42/9;
    # s^2 = (42/9) / 2 = 7/3; sem = sqrt(7/3 / 3) = sqrt(7/9).
    # With 2 df the t quantile has a closed form, t_p = (2p - 1) / sqrt(2 p (1 - p)):
    # p = 0.975 gives 0.95 / sqrt(0.04875) = 4.30265... (tables: 4.303).
    t975 = 0.95 / math.sqrt(2 * 0.975 * 0.025)
    assert t975 == pytest.approx(4.303, abs=5e-4)
    s = summarize([1.0, 2.0, 4.0])
    assert s.n == 3
    assert s.mean == pytest.approx(7 / 3, rel=1e-15)
    assert s.std == pytest.approx(math.sqrt(7 / 3), rel=1e-15)
    half = t975 * math.sqrt(7 / 9)
    assert s.ci_low == pytest.approx(7 / 3 - half, rel=1e-12)
    assert s.ci_high == pytest.approx(7 / 3 + half, rel=1e-12)
    assert s.ci == (s.ci_low, s.ci_high)
    assert "2 df" in s.method


@pytest.mark.parametrize(
    ("df", "level", "table"),
    [(2, 0.95, 4.303), (4, 0.95, 2.776), (9, 0.95, 2.262), (4, 0.90, 2.132), (9, 0.99, 3.250)],
)
def test_summarize_uses_the_t_quantile(df: int, level: float, table: float) -> None:
    values = np.arange(df + 1, dtype=float) ** 1.5
    s = summarize(values, level=level)
    sem = np.std(values, ddof=1) / math.sqrt(values.size)
    q = (s.ci_high - s.mean) / sem
    assert q == pytest.approx(sps.t.ppf(0.5 + level / 2, df), rel=1e-12)
    assert q == pytest.approx(table, abs=6e-4)  # printed t tables, 3 decimals
    assert s.ci_low == pytest.approx(2 * s.mean - s.ci_high, rel=1e-12)


def test_standard_errors_widen_the_interval_by_the_derived_formula() -> None:
    x = np.array([2.0, 2.4, 2.2, 2.9])
    se = np.array([0.1, 0.5, 0.3, 0.2])
    plain = summarize(x)
    comb = summarize(x, std_errors=se)
    n = x.size
    s2 = np.var(x, ddof=1)
    # Var(mean) = var_between / n + mean(se_i^2) / n, t quantile kept at n - 1 df.
    sem = math.sqrt(s2 / n + np.mean(se**2) / n)
    assert comb.sem == pytest.approx(sem, rel=1e-14)
    q = sps.t.ppf(0.975, n - 1)
    assert comb.ci_low == pytest.approx(x.mean() - q * sem, rel=1e-13)
    assert comb.ci_high == pytest.approx(x.mean() + q * sem, rel=1e-13)
    assert comb.ci_high - comb.ci_low > plain.ci_high - plain.ci_low
    assert comb.std == plain.std and comb.mean == plain.mean
    assert "se^2" in comb.method and "se^2" not in plain.method
    # Zero standard errors change nothing.
    assert summarize(x, std_errors=np.zeros(n)).ci == plain.ci


def test_summarize_one_member_has_no_interval() -> None:
    s = summarize([3.5], std_errors=[0.2])
    assert (s.n, s.mean, s.std, s.ci, s.ci_low, s.ci_high) == (1, 3.5, None, None, None, None)
    assert "one run" in s.note
    json.dumps(s.to_dict())


def test_summary_is_frozen_with_short_repr_and_json() -> None:
    s = summarize([1.0, 2.0, 4.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.mean = 0.0  # type: ignore[misc]
    assert len(repr(s)) < 100 and repr(s).startswith("GroupSummary(n=3")
    d = json.loads(json.dumps(s.to_dict()))
    assert d["n"] == 3 and d["ci_low"] == s.ci_low and d["method"] == s.method


# --------------------------------------------------------------------------- permutation test


def _exact_p_by_enumeration(a: list[float], b: list[float]) -> float:
    """Independent reference: every relabeling with itertools, two-sided |mean diff|."""
    pooled = list(a) + list(b)
    obs = abs(sum(a) / len(a) - sum(b) / len(b))
    count = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        ga = [pooled[i] for i in chosen]
        gb = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        total += 1
        count += abs(sum(ga) / len(ga) - sum(gb) / len(gb)) >= obs - 1e-12
    return count / total


def test_exact_permutation_p_by_hand_3_vs_3() -> None:
    # a = 1, 2, 3 vs b = 4, 5, 6: |diff| = 3; among the C(6,3) = 20 relabelings only
    # {1,2,3} | {4,5,6} and its mirror {4,5,6} | {1,2,3} reach 3, so p = 2/20 = 0.1.
    v = compare_groups([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], test="permutation")
    assert v.p_value == pytest.approx(0.1, abs=1e-15)
    assert v.test_used == "permutation (exact, 20 relabelings)"
    # p = 0.1 >= 0.05 so no verdict, however separated the groups are.
    assert v.word == "not distinguishable"


def test_exact_permutation_p_by_hand_3_vs_5() -> None:
    # a = 1, 2, 3 (mean 2) vs b = 4..8 (mean 6): |diff| = 4; the mirror a = 6, 7, 8
    # (mean 7) vs 1..5 (mean 3) also gives 4; every other of the C(8,3) = 56 less.
    v = compare_groups([1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0, 8.0])
    assert v.p_value == pytest.approx(2 / 56, abs=1e-15)
    assert v.test_used == "permutation (exact, 56 relabelings)"
    assert v.word == "flatter"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1.0, 2.0, 4.0], [3.0, 5.0, 6.0]),
        ([2.0, 2.0, 3.0], [2.0, 3.0, 3.0, 5.0]),  # ties across groups
        ([0.3, 1.7, 0.9, 1.1], [1.5, 2.2, 0.8, 1.9]),
        ([1.0, 1.0], [1.0, 2.0, 3.0, 1.0, 4.0]),
    ],
)
def test_exact_permutation_matches_itertools_enumeration(a, b) -> None:
    v = compare_groups(a, b, test="permutation")
    assert v.p_value == pytest.approx(_exact_p_by_enumeration(a, b), abs=1e-15)
    assert "exact" in v.test_used


def test_monte_carlo_permutation_agrees_with_exact_and_is_seeded(monkeypatch) -> None:
    a = [0.3, 1.7, 0.9, 1.1, 0.4]
    b = [1.5, 2.2, 0.8, 1.9, 1.2]
    exact = _exact_p_by_enumeration(a, b)
    monkeypatch.setattr(vt, "EXACT_PERMUTATION_LIMIT", 100)  # C(10,5) = 252 > 100
    v = compare_groups(a, b, test="permutation", n_perm=20_000, seed=3)
    assert v.test_used == "permutation (Monte Carlo, 20000 relabelings)"
    # Monte Carlo standard error sqrt(p(1-p)/N) < 0.0036; allow 4 of them.
    assert abs(v.p_value - exact) < 4 * math.sqrt(exact * (1 - exact) / 20_000) + 1e-4
    again = compare_groups(a, b, test="permutation", n_perm=20_000, seed=3)
    assert again.p_value == v.p_value
    # p = (1 + k) / (1 + N): never 0, even for a labeling no draw reaches.
    far = compare_groups([1.0, 2, 3, 4, 5], [100.0, 101, 102, 103, 104], test="permutation")
    assert far.p_value >= 1 / 10_001


def test_welch_matches_scipy_without_standard_errors() -> None:
    a, b = [1.0, 2.0, 4.0], [3.0, 5.0, 6.5]
    v = compare_groups(a, b)  # 3 vs 3: the permutation test cannot reach 0.05
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert v.test_used.startswith("welch t")
    assert v.p_value == pytest.approx(float(ref.pvalue), rel=1e-10)


def test_welch_with_standard_errors_by_formula() -> None:
    a, b = np.array([1.0, 2.0, 4.0]), np.array([3.0, 5.0, 6.5])
    sa, sb = np.array([0.5, 0.2, 0.1]), np.array([1.0, 0.0, 0.3])
    va = (np.var(a, ddof=1) + np.mean(sa**2)) / 3
    vb = (np.var(b, ddof=1) + np.mean(sb**2)) / 3
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    v = compare_groups(a, b, a_se=sa, b_se=sb)
    assert v.p_value == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-12)
    assert v.p_value > compare_groups(a, b).p_value


def test_auto_test_choice() -> None:
    x = [1.0, 1.2, 0.9, 1.1, 1.3, 1.05, 0.95, 1.15]
    assert compare_groups(x[:2], x[2:4]).test_used.startswith("welch")  # C(4,2) = 6
    assert compare_groups(x[:3], x[3:6]).test_used.startswith("welch")  # 2/20 = 0.1
    assert compare_groups(x[:3], x[3:8]).test_used.startswith("permutation (exact")  # 2/56
    assert compare_groups(x[:4], x[4:8]).test_used.startswith("permutation (exact")  # 2/70
    # At 90 % the 3 vs 3 permutation test can reach p = 0.1 ... but not < 0.1.
    assert compare_groups(x[:3], x[3:6], level=0.90).test_used.startswith("welch")
    assert compare_groups(x[:3], x[3:6], level=0.85).test_used.startswith("permutation")
    big = compare_groups(np.linspace(1, 2, 12), np.linspace(1.1, 2.1, 12), n_boot=200)
    assert big.test_used.startswith("permutation (Monte Carlo")  # C(24,12) > limit
    assert compare_groups(x[:3], x[3:6], test="permutation").test_used.startswith("perm")
    assert compare_groups(x[:3], x[3:8], test="welch").test_used.startswith("welch")


# --------------------------------------------------------------------------- bootstrap & verdicts


def test_bootstrap_ratio_interval_covers_the_true_ratio() -> None:
    # 200 datasets of 8 lognormal members per group; ratio of means exp(-0.2).
    rng = np.random.default_rng(20240613)
    true_ratio = math.exp(-0.2)  # E exp(N(mu, s^2)) = exp(mu + s^2 / 2), same s
    hits = 0
    for i in range(200):
        a = np.exp(rng.normal(0.0, 0.3, 8))
        b = np.exp(rng.normal(0.2, 0.3, 8))
        v = compare_groups(a, b, n_boot=2000, seed=i, test="welch")
        hits += v.ratio_ci[0] <= true_ratio <= v.ratio_ci[1]
        assert v.ratio_ci[0] <= v.ratio <= v.ratio_ci[1]
    coverage = hits / 200
    # Nominal 0.95; binomial sd over 200 datasets is 0.015.
    assert 0.88 <= coverage <= 0.99, coverage


def test_bootstrap_interval_is_expanded_for_small_groups() -> None:
    # Hesterberg's expanded percentile level Phi(-sqrt(n/(n-1)) t_{n-1}) * 2:
    # n = 8: t_7 = 2.3646, * sqrt(8/7) = 2.5279, two-sided tail 0.01148 -> 0.9885.
    assert vt._expanded_level(0.95, 8) == pytest.approx(0.98852, abs=2e-5)
    assert 0.95 < vt._expanded_level(0.95, 200) < 0.953  # tends to the level
    # n = 3: t_2 = 4.3027, * sqrt(3/2) = 5.27 -> tails of 1.4e-7: the extreme resamples.
    # a = 1, 2, 3 and b = 4, 5, 6: the smallest ratio resample is all-1 over all-6 (1/6),
    # the largest all-3 over all-4 (3/4); each has probability 1/729 per resample, so
    # 10000 resamples contain both. The plain 95 % percentile interval is much narrower.
    v = compare_groups([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert v.ratio_ci == pytest.approx((1 / 6, 3 / 4), abs=1e-15)
    assert v.diff_ci == pytest.approx((1.0 - 6.0, 3.0 - 4.0), abs=1e-15)


def test_bootstrap_is_seeded_and_states_its_resamples() -> None:
    a, b = [1.0, 1.3, 0.8, 1.1], [1.5, 1.4, 1.9, 1.6]
    v1 = compare_groups(a, b, n_boot=500, seed=7)
    v2 = compare_groups(a, b, n_boot=500, seed=7)
    v3 = compare_groups(a, b, n_boot=500, seed=8)
    assert v1 == v2
    assert v1.ratio_ci != v3.ratio_ci
    assert (v1.n_boot, v1.seed) == (500, 7)


def test_one_distribution_is_not_distinguishable() -> None:
    rng = np.random.default_rng(99)
    words = []
    for i in range(200):
        a = rng.lognormal(0.0, 0.25, 3)
        b = rng.lognormal(0.0, 0.25, 5)
        words.append(compare_groups(a, b, n_boot=2000, seed=i).word)
    share = words.count("not distinguishable") / 200
    assert share >= 0.90, share
    assert set(words) <= {"not distinguishable", "flatter", "sharper"}


SAM = [1.0, 1.1, 0.9]
SGD = [2.0, 2.1, 1.9, 2.2, 1.8]


def test_separated_groups_get_the_right_word() -> None:
    v = compare_groups(SAM, SGD)
    assert v.word == "flatter"
    assert v.ratio == pytest.approx(0.5)
    assert v.ratio_ci[1] < 1.0 and v.diff == pytest.approx(-1.0)
    assert compare_groups(SGD, SAM).word == "sharper"
    assert compare_groups(SGD, SAM).ratio == pytest.approx(2.0)
    # Higher = flatter (e.g. a width measure): the words swap.
    assert compare_groups(SAM, SGD, lower_is_flatter=False).word == "sharper"
    assert compare_groups(SGD, SAM, lower_is_flatter=False).word == "flatter"
    # Also with Welch (3 vs 3).
    assert compare_groups(SAM, SGD[:3]).word == "flatter"
    assert compare_groups(SGD[:3], SAM).word == "sharper"


def test_standard_errors_can_flip_the_verdict() -> None:
    plain = compare_groups(SAM, SGD, seed=1)
    noisy = compare_groups(SAM, SGD, a_se=[1.0] * 3, b_se=[1.0] * 5, seed=1)
    assert plain.word == "flatter"
    # The permutation test sees the values only; the interval carries the se.
    assert noisy.p_value == plain.p_value
    assert noisy.ratio_ci[0] < plain.ratio_ci[0] and noisy.ratio_ci[1] > plain.ratio_ci[1]
    assert noisy.ratio_ci[0] < 1.0 < noisy.ratio_ci[1]
    assert noisy.word == "not distinguishable"
    assert "interval" in noisy.note
    # Welch: the se enter the test itself.
    w = compare_groups(SAM, SGD[:3], a_se=[1.5] * 3, b_se=[1.5] * 3)
    assert w.word == "not distinguishable" and w.p_value > 0.05


def test_one_member_group_degrades_gracefully() -> None:
    for a, b in (([1.0], SGD), (SGD, [1.0]), ([1.0], [2.0])):
        v = compare_groups(a, b)
        assert v.word == "not distinguishable (one run)"
        assert v.ratio_ci is None and v.diff_ci is None and v.p_value is None
        assert v.test_used == "none (one run)"
        assert v.ratio == pytest.approx(np.mean(a) / np.mean(b))
        json.dumps(v.to_dict())


def test_nonpositive_denominator_uses_the_difference() -> None:
    a = [-3.0, -3.1, -2.9, -3.05, -2.95]
    b = [-1.0, -1.1, -0.9, -1.05, -0.95]
    v = compare_groups(a, b)
    assert v.ratio is None and v.ratio_ci is None
    assert v.diff_ci[1] < 0 and v.word == "flatter"
    assert "<= 0" in v.note
    # Positive mean of b but resamples reaching <= 0: no ratio interval.
    w = compare_groups([0.1, 0.2, 0.15, 0.12], [-1.0, 2.0, -0.5, 1.0], n_boot=2000)
    assert w.ratio is not None and w.ratio_ci is None and w.diff_ci is not None


def test_verdict_repr_and_json() -> None:
    v = compare_groups(SAM, SGD)
    r = repr(v)
    assert r.startswith("Verdict('flatter', ratio=0.5") and len(r) < 160
    d = json.loads(json.dumps(v.to_dict()))
    assert d["word"] == "flatter" and d["ratio_ci"] == list(v.ratio_ci)
    assert d["test_used"] == "permutation (exact, 56 relabelings)"
    assert (d["n_a"], d["n_b"], d["level"], d["n_boot"], d["seed"]) == (3, 5, 0.95, 10_000, 0)


# --------------------------------------------------------------------------- Kendall


def _hand_tau_b(x, y) -> float:
    conc = disc = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = np.sign(x[j] - x[i]), np.sign(y[j] - y[i])
        tx += dx == 0
        ty += dy == 0
        conc += dx * dy > 0
        disc += dx * dy < 0
    n0 = len(x) * (len(x) - 1) / 2
    return (conc - disc) / math.sqrt((n0 - tx) * (n0 - ty))


def test_kendall_hand_counted_with_ties() -> None:
    # x = 1, 2, 2, 3; y = 1, 3, 2, 2. Pairs: (0,1) C, (0,2) C, (0,3) C, (1,2) tie in x,
    # (1,3) D (x up, y down), (2,3) tie in y. C = 3, D = 1, n0 = 6, 1 tie in each:
    # tau_b = (3 - 1) / sqrt((6 - 1)(6 - 1)) = 0.4.
    c = kendall_with_gap([1.0, 2.0, 2.0, 3.0], [1.0, 3.0, 2.0, 2.0])
    assert c.tau == pytest.approx(0.4, abs=1e-14)
    assert c.n == 4 and c.ci is None and "5 runs" in c.note
    assert c.p_value == pytest.approx(sps.kendalltau([1, 2, 2, 3], [1, 3, 2, 2])[1])


def test_kendall_against_scipy_and_hand_count_with_ties() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(0, 5, 15).astype(float)  # many ties
    y = x + rng.integers(-2, 3, 15)
    c = kendall_with_gap(x, y)
    ref = sps.kendalltau(x, y)
    assert c.tau == pytest.approx(_hand_tau_b(x, y), abs=1e-13)
    assert c.tau == pytest.approx(float(ref[0]), abs=1e-13)
    assert c.p_value == pytest.approx(float(ref[1]), rel=1e-12)
    # Fisher z with sigma^2 = 0.437 / (n - 4) (Fieller et al. 1957):
    half = 1.959963984540054 * math.sqrt(0.437 / 11)
    assert c.ci[0] == pytest.approx(math.tanh(math.atanh(c.tau) - half), rel=1e-12)
    assert c.ci[1] == pytest.approx(math.tanh(math.atanh(c.tau) + half), rel=1e-12)
    assert c.ci[0] < c.tau < c.ci[1]
    assert "0.437" in c.method
    json.dumps(c.to_dict())


def test_kendall_fisher_interval_covers_about_nominally() -> None:
    # Bivariate normal with correlation rho: Kendall's tau = (2/pi) asin(rho).
    rng = np.random.default_rng(11)
    rho, n = 0.5, 30
    tau_true = 2 / math.pi * math.asin(rho)
    cov = [[1, rho], [rho, 1]]
    hits = 0
    for _ in range(200):
        x, y = rng.multivariate_normal([0, 0], cov, n).T
        c = kendall_with_gap(x, y)
        hits += c.ci[0] <= tau_true <= c.ci[1]
    assert 0.88 <= hits / 200 <= 0.995


def test_kendall_degenerate_cases() -> None:
    perfect = kendall_with_gap([1.0, 2, 3, 4, 5, 6], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert perfect.tau == pytest.approx(1.0) and perfect.ci is None and "|tau| = 1" in perfect.note
    const = kendall_with_gap([1.0, 2, 3, 4, 5], [0.5] * 5)
    assert const.tau is None and const.p_value is None and "gaps is constant" in const.note
    assert "Correlation(tau=None" in repr(const)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: summarize([1.0, float("nan"), 2.0]), r"non-finite value nan at member 1"),
        (lambda: summarize([]), r"values is empty"),
        (lambda: summarize([1.0, 2.0], std_errors=[0.1]), r"1 entries but the group has 2"),
        (lambda: summarize([1.0, 2.0], std_errors=[0.1, -0.2]), r">= 0, got -0.2 at member 1"),
        (lambda: summarize([1.0, 2.0], level=1.5), r"level .* got 1.5"),
        (lambda: summarize([[1.0, 2.0]]), r"shape \(1, 2\)"),
        (lambda: compare_groups([], [1.0]), r"group a is empty"),
        (lambda: compare_groups([1.0], [float("inf"), 2.0]), r"group b .* inf at member 0"),
        (lambda: compare_groups([1.0, 2.0], [1.0], a_se=[1.0]), r"a_se has 1 entries .* 2"),
        (lambda: compare_groups([1.0, 2.0], [1.0], test="ttest"), r"got 'ttest'"),
        (lambda: compare_groups([1.0, 2.0], [1.0], n_boot=0), r"n_boot .* got 0"),
        (lambda: compare_groups([1.0, 2.0], [1.0], seed=-1), r"seed .* got -1"),
        (lambda: kendall_with_gap([1.0, 2.0, 3.0], [1.0, 2.0]), r"3 runs but gaps has 2"),
        (lambda: kendall_with_gap([1.0], [1.0]), r"at least 2 runs, got 1"),
        (lambda: kendall_with_gap([1.0, 2.0], [1.0, float("nan")]), r"gaps has a non-finite"),
        (lambda: summarize(["a", "b"]), r"must be numbers"),
    ],
)
def test_bad_input_is_one_sharpscope_error(call, match) -> None:
    with pytest.raises(SharpscopeError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
