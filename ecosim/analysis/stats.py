"""Confidence intervals and the one-sided test used to call a lift significant."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and a Student-t interval over independent units (questions, or seeds)."""
    x = np.asarray(values, dtype=float)
    m = float(x.mean())
    if len(x) < 2 or float(x.std()) == 0.0:
        return m, m, m
    h = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, m - h, m + h


def paired_one_sided(treated, control) -> float:
    """p-value of a one-sided paired t-test (H1: treated > control), pairs matched by seed.
    With one pair there is no test: returns NaN."""
    t, c = np.asarray(treated, float), np.asarray(control, float)
    if len(t) < 2:
        return float("nan")
    d = t - c
    if float(d.std()) == 0.0:
        return 0.0 if d.mean() > 0 else 1.0
    return float(stats.ttest_rel(t, c, alternative="greater").pvalue)
