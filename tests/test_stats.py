"""stats/: the one block bootstrap and the one reliability table, on numbers whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stats.bootstrap import equal_spans, ratio_interval, runs_of_time, share_interval
from stats.reliability import reliability_table


def test_an_interval_over_blocks_that_move_together_is_wider_than_over_rows() -> None:
    rng = np.random.default_rng(0)
    days = np.repeat(np.arange(40), 25)  # 25 coins a day, the day's move shared
    hits = (rng.normal(size=40)[days] + 0.3 * rng.normal(size=len(days)) > 0).astype(float)
    share, low, high = share_interval(hits, days)
    _, row_low, row_high = share_interval(hits, np.arange(len(hits)))
    assert low <= share <= high and high - low > 2.5 * (row_high - row_low)


def test_a_ratio_of_sums_and_a_zero_denominator() -> None:
    err, naive = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0])
    assert ratio_interval(err, naive, np.arange(3))[0] == 1.0
    assert ratio_interval(err, np.zeros(3), np.arange(3))[0] == 1.0


def test_blocks_by_time() -> None:
    stamps = pd.DatetimeIndex(pd.date_range("2024-01-01", periods=30, freq="1D"))
    assert runs_of_time(stamps, pd.Timedelta(days=1), 10).tolist() == [0] * 10 + [1] * 10 + [2] * 10
    spans = equal_spans(stamps.to_numpy(), 3)
    assert spans is not None and sorted(set(spans.tolist())) == [0, 1, 2] and spans[-1] == 2
    assert equal_spans(np.array(["2024-01-01"] * 3, dtype="datetime64[ms]"), 3) is None


def test_the_reliability_table_keeps_ties_together_and_leaves_unknown_hits_out() -> None:
    stated = np.array([0.5] * 60 + [0.7] * 40)
    hit = np.r_[np.tile([1.0, 0.0], 30), np.ones(30), np.zeros(9), np.nan]
    table = reliability_table(stated, hit, np.arange(100) // 5, bins=10)
    assert [(b.low, b.high, b.n) for b in table] == [(0.5, 0.5, 60), (0.7, 0.7, 39)]
    assert table[0].observed == 0.5 and table[1].observed == 30 / 39
    assert all(b.observed_low is not None and b.observed_low <= b.observed <= b.observed_high for b in table)
    assert reliability_table(stated, hit)[0].observed_low is None  # no blocks, no interval
