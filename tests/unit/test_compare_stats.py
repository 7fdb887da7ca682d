"""The statistics of `pgrad compare`: IQM, stratified bootstrap intervals, curves on a common grid."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pgrad.compare import bootstrap_band, interpolate_curves, iqm, stratified_bootstrap_ci


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 10, 13, 100])
def test_iqm_is_scipy_trim_mean(n):
    x = np.random.default_rng(n).normal(size=n) * 10
    assert iqm(x) == pytest.approx(stats.trim_mean(x, 0.25))


def test_iqm_by_hand_ignores_outliers():
    # 8 scores: cut 2 from each end, mean of the middle 4
    assert iqm([1000, 3, 1, 2, 4, 5, 6, -1000]) == pytest.approx((2 + 3 + 4 + 5) / 4)
    # pooled over a [runs, tasks] array
    assert iqm(np.array([[1, 2], [3, 4]])) == pytest.approx(2.5)


def slow_stratified(x, statistic, reps, seed):
    """Reference: resample each task's column separately, one replicate at a time."""
    rng = np.random.default_rng(seed)
    n, m = x.shape
    idx = rng.integers(0, n, size=(reps, n, m))
    out = []
    for r in range(reps):
        sample = np.empty_like(x)
        for j in range(m):
            for i in range(n):
                sample[i, j] = x[idx[r, i, j], j]
        out.append(statistic(sample))
    return np.percentile(out, [2.5, 97.5])


def test_stratified_bootstrap_matches_slow_loop():
    x = np.random.default_rng(0).normal(size=(6, 3)) + np.arange(3) * 5.0
    lo, hi = stratified_bootstrap_ci(x, iqm, reps=300, seed=4)
    ref = slow_stratified(x, iqm, 300, 4)
    assert (lo, hi) == pytest.approx(tuple(ref))


def test_stratified_bootstrap_keeps_tasks_apart():
    # task 0 scores ~0, task 1 scores ~100: a stratified resample always holds 4 of each, so the pooled mean
    # barely moves; an unstratified one would swing by tens.
    x = np.stack([np.array([0.0, 1, 2, 3]), np.array([100.0, 101, 102, 103])], axis=1)
    lo, hi = stratified_bootstrap_ci(x, np.mean, reps=2000)
    assert 50.0 <= lo <= 51.5 <= hi <= 53.0


def test_bootstrap_interval_contains_estimate_and_shrinks_with_runs():
    rng = np.random.default_rng(1)
    small, large = rng.normal(size=5), rng.normal(size=200)
    lo_s, hi_s = stratified_bootstrap_ci(small, iqm)
    lo_l, hi_l = stratified_bootstrap_ci(large, iqm)
    assert lo_s <= iqm(small) <= hi_s and lo_l <= iqm(large) <= hi_l
    assert hi_l - lo_l < hi_s - lo_s
    # the mean of 200 draws of N(0, 1): its interval holds the true mean 0 and is about ±1.96/sqrt(200) wide
    lo, hi = stratified_bootstrap_ci(large, np.mean)
    assert lo < 0 < hi and 0.2 < hi - lo < 0.35


def test_curves_interpolate_on_the_common_range():
    a = (np.array([100, 200, 300]), np.array([0.0, 10.0, 20.0]))
    b = (np.array([150, 250, 350]), np.array([0.0, 0.0, 0.0]))
    grid, ys = interpolate_curves([a, b], points=5)
    assert grid[0] == 150 and grid[-1] == 300  # never extrapolated past either run
    assert ys.shape == (2, 5)
    np.testing.assert_allclose(ys[0], np.interp(grid, a[0], a[1]))
    mean, lo, hi = bootstrap_band(ys)
    np.testing.assert_allclose(mean, ys.mean(0))
    assert np.all(lo <= mean + 1e-9) and np.all(mean <= hi + 1e-9)
    assert np.all(lo >= ys.min(0) - 1e-9) and np.all(hi <= ys.max(0) + 1e-9)
