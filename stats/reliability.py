"""The reliability table: stated probability against what came true, in bins of about equal
count, each hit rate with its block-bootstrap interval where the rows' blocks are known.

Equal-count bins, because fixed ones leave most bins empty where confidences crowd near one
half; steps that state the same probability share a bin, because an equal-count cut through a
tie would split identical statements by row order and call the difference a miscalibration;
intervals, because steps of one time share the market's move, so a bin of a thousand steps can
hold a few dozen independent draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stats.bootstrap import share_interval


@dataclass(frozen=True)
class Bin:
    low: float  # the lowest stated probability in the bin
    high: float  # the highest
    n: int
    stated: float  # the mean stated probability
    observed: float  # the share that came true
    observed_low: float | None = None  # its 95 % block-bootstrap interval (None without blocks)
    observed_high: float | None = None


def reliability_table(stated: np.ndarray, hit: np.ndarray, blocks: np.ndarray | None = None,
                      bins: int = 10) -> list[Bin]:
    """`stated` probabilities against `hit` (1 came true, 0 not; NaN rows left out), `blocks`
    each row's bootstrap block."""
    p, y = np.asarray(stated, dtype=np.float64).ravel(), np.asarray(hit, dtype=np.float64).ravel()
    known = np.isfinite(p) & np.isfinite(y)
    b = None if blocks is None else np.asarray(blocks).ravel()[known]
    p, y = p[known], y[known]
    if p.size == 0:
        return []
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    index = np.searchsorted(edges, p, side="right")
    rows = []
    for k in np.unique(index):
        chunk = index == k
        low = high = None
        if b is not None:
            _, low, high = share_interval(y[chunk], b[chunk])
        rows.append(Bin(float(p[chunk].min()), float(p[chunk].max()), int(chunk.sum()), float(p[chunk].mean()),
                        float(y[chunk].mean()), low, high))
    return rows
