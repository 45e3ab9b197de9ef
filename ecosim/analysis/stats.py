"""Confidence intervals, the one-sided test used to call a lift significant, Holm's adjustment
for a table of such tests, a bootstrap interval for a ratio of means over seeds, and how many
seeds a test needs to find a given lift (power)."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ecosim.engine import seeds


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and a Student-t interval over independent units (questions, or seeds). No units:
    NaN, NaN, NaN."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if len(x) < 2 or float(x.std()) == 0.0:
        return m, m, m
    h = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, m - h, m + h


def _same(d: np.ndarray) -> bool:
    """Every difference the same up to float rounding (0.35 - 0.05 and 0.40 - 0.10 differ in the
    last bit): a t statistic on that spread is rounding noise, not evidence."""
    return bool(np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())))


def paired_test(treated, control, alternative: str = "greater") -> tuple[float, str]:
    """(p, what): the p-value of a one-sided paired t-test (H1: treated > control; ``alternative``
    "two-sided": H1 treated != control), pairs matched by seed, and what it is. No test, p NaN and
    ``what`` says why: one pair, or zero variance (every pair's difference the same, where a
    t-test would say p = 0 or 1 from no spread)."""
    t, c = np.asarray(treated, float), np.asarray(control, float)
    if len(t) < 2:
        return math.nan, "one pair: no test"
    d = t - c
    if _same(d):
        return math.nan, f"zero variance: every pair's difference is {float(d.mean()):+.3g} (no test)"
    sides = "two-sided" if alternative == "two-sided" else "one-sided"
    return float(stats.ttest_rel(t, c, alternative=alternative).pvalue), f"{sides} paired t over {len(t)} pairs"


def paired_one_sided(treated, control) -> float:
    """p-value of a one-sided paired t-test (H1: treated > control), pairs matched by seed.
    With one pair, or differences of zero variance, there is no test: returns NaN (``paired_test``
    says which)."""
    return paired_test(treated, control)[0]


def holm(pvalues) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (controls the family-wise error rate).
    NaN (or None) stays NaN and is not counted as a test. Same order as given."""
    p = np.array([math.nan if v is None else float(v) for v in pvalues], float)
    out = np.full(len(p), math.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = len(idx)
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return [float(x) for x in out]


def n_tests(pvalues) -> int:
    """How many of ``pvalues`` are tests (not None, not NaN)."""
    return sum(v is not None and not math.isnan(v) for v in pvalues)


def ratio_of_means_ci(num, den, level: float = 0.95, n_boot: int = 2000,
                      seed: int = 0) -> tuple[float, float, float]:
    """mean(num) / mean(den) over paired units (seeds) and a percentile bootstrap interval,
    resampling the units (numpy default_rng(seed): deterministic). NaN ratio where mean(den) <= 0
    (a share of nothing); NaN bounds with one unit, or where (1 - level) / 2 or more of the
    resamples have mean(den) <= 0 (the denominator is not reliably positive)."""
    a, b = np.asarray(num, float), np.asarray(den, float)
    n = len(a)
    if n == 0 or b.mean() <= 0:
        return math.nan, math.nan, math.nan
    r = float(a.mean() / b.mean())
    if n < 2:
        return r, math.nan, math.nan
    i = seeds.rng(seed).integers(0, n, size=(n_boot, n))
    mb = b[i].mean(1)
    ok = mb > 0
    alpha = (1 - level) / 2
    if (~ok).mean() >= alpha:
        return r, math.nan, math.nan
    rb = np.where(ok, a[i].mean(1) / np.where(ok, mb, 1.0), -np.inf)  # bad resamples: below every ratio
    lo, hi = np.quantile(rb, [alpha, 1 - alpha])
    return r, float(lo), float(hi)


def power(n: int, effect: float, sd: float, alpha: float = 0.05) -> float:
    """Power of the one-sided paired t-test over ``n`` seeds (``paired_test``) to find a true mean
    lift ``effect`` when seed-to-seed lifts scatter with standard deviation ``sd``: P(t > the
    critical value) under the noncentral t with n - 1 degrees of freedom."""
    if n < 2:
        return 0.0
    crit = stats.t.ppf(1 - alpha, n - 1)
    return float(stats.nct.sf(crit, n - 1, effect / sd * math.sqrt(n)))


def seeds_needed(effect: float, sd: float, alpha: float = 0.05, target: float = 0.8, most: int = 100_000) -> int | None:
    """The fewest seeds whose one-sided paired t-test reaches ``target`` power for a true lift
    ``effect`` (``power``); None if not within ``most``."""
    lo, hi = 2, 2
    while power(hi, effect, sd, alpha) < target:
        if hi >= most:
            return None
        lo, hi = hi, min(hi * 2, most)
    while lo < hi:  # power grows with n: the first n that reaches the target
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if power(mid, effect, sd, alpha) < target else (lo, mid)
    return lo
