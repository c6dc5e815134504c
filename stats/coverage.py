"""Whether a band's misses come in clusters: Christoffersen's (1998) test of independence.

A band that misses 20 % of outcomes on average but misses them in runs (every candle of a storm,
none in the calm) is not calibrated where it matters: a miss today makes one tomorrow likelier.
The test compares the chance of a miss after a miss with the chance after a hit, on each series'
consecutive outcomes (a gap in a series starts it again), as a likelihood ratio with one degree
of freedom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Independence:
    """The transition counts (hit or miss, then hit or miss), the chance of a miss after a hit and
    after a miss, the likelihood ratio and its p-value (small: the misses cluster, or avoid each
    other)."""

    transitions: int
    p_miss_after_hit: float
    p_miss_after_miss: float
    lr: float
    p_value: float


def independence_test(misses: np.ndarray, series: np.ndarray, position: np.ndarray) -> Independence:
    """`misses` (bool per outcome), each outcome's `series` (a coin) and `position` in it (a
    candle index): transitions are counted between outcomes of one series at consecutive
    positions only."""
    order = np.lexsort((position, series))
    miss, ser, pos = np.asarray(misses, bool)[order], np.asarray(series)[order], np.asarray(position)[order]
    follows = (ser[1:] == ser[:-1]) & (pos[1:] == pos[:-1] + 1)
    before, after = miss[:-1][follows], miss[1:][follows]
    n00, n01 = int((~before & ~after).sum()), int((~before & after).sum())
    n10, n11 = int((before & ~after).sum()), int((before & after).sum())
    total = n00 + n01 + n10 + n11
    p01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    p11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    p = (n01 + n11) / total if total else 0.0
    lr = max(0.0, -2.0 * (_log_likelihood(n00 + n10, n01 + n11, p)
                          - _log_likelihood(n00, n01, p01) - _log_likelihood(n10, n11, p11)))
    return Independence(total, p01, p11, lr, chi2_sf(lr, 1))


def _log_likelihood(stays: int, moves: int, p: float) -> float:
    """log((1 - p)^stays p^moves), 0 log 0 taken as 0."""
    return (stays * math.log(1.0 - p) if stays and p < 1.0 else 0.0) + (moves * math.log(p) if moves and p > 0 else 0.0)


def chi2_sf(x: float, df: int) -> float:
    """P(chi-squared with `df` degrees of freedom > x): the regularised upper incomplete gamma
    Q(df / 2, x / 2), by its series (x small) or continued fraction (Numerical Recipes 6.2)."""
    a, z = df / 2.0, x / 2.0
    if z <= 0:
        return 1.0
    log_front = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1:  # the series of P, then Q = 1 - P
        term = total = 1.0 / a
        k = a
        while abs(term) > abs(total) * 1e-15:
            k += 1
            term *= z / k
            total += term
        return max(0.0, 1.0 - total * math.exp(log_front))
    b, c, d = z + 1.0 - a, 1e300, 1.0 / (z + 1.0 - a)  # Lentz's continued fraction of Q
    h = d
    for i in range(1, 500):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return math.exp(log_front) * h
