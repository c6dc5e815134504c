"""The band judged on every candle (`training.band.every_candle`) and the test of clustered misses
(`stats.coverage`), on random walks whose right band is known."""

import numpy as np
import pandas as pd
import pytest

from stats.coverage import chi2_sf, independence_test
from training.band.band import Band
from training.band.every_candle import JUDGED_HORIZONS, ROLLING20, Judged, band_every_candle, rolling20_levels
from training.band.quantiles import BAND_ROWS

START, VALID, TEST = (pd.Timestamp(t, tz="UTC") for t in ("2020-01-01", "2022-01-01", "2023-01-01"))


def _walks(coins: int = 4, candles: int = 1800, seed: int = 0, storm: bool = False) -> dict[str, pd.DataFrame]:
    """Daily random walks of constant volatility (with `storm`, ten times calmer and wilder spans
    alternating every 60 candles)."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(START, periods=candles, freq="D")
    out = {}
    for c in range(coins):
        sigma = np.where((np.arange(candles) // 60) % 2, 0.05, 0.005) if storm else 0.02
        close = 100 * np.exp(np.cumsum(rng.normal(0, 1, candles) * sigma))
        out[f"X:C{c}USD"] = pd.DataFrame({"timestamp": stamps, "close": close})
    return out


def _band(candles: dict[str, pd.DataFrame], wider: float = 1.0) -> Band:
    table = rolling20_levels(candles, VALID, TEST) * wider
    levels = tuple(tuple(float(v) for v in row) for row in table)
    lo, hi = levels[BAND_ROWS[0]], levels[BAND_ROWS[1]]
    return Band(ROLLING20, lo, hi, lo, hi, levels=levels, naive_levels=levels)


def test_the_simple_band_served_scores_as_the_simple_band_and_a_wider_one_worse() -> None:
    candles = _walks()
    end = pd.Timestamp(candles["X:C0USD"]["timestamp"].iloc[-1])
    same = band_every_candle(_band(candles), candles, (TEST, end), (VALID, TEST), "1d").summary()
    assert set(same) == {str(h) for h in JUDGED_HORIZONS}
    for h in JUDGED_HORIZONS:
        row = same[str(h)]
        assert row["origins"] == 4 * (len(pd.date_range(TEST, end, freq="D")) - 1 - 30) + 4
        assert row["ratio"] == pytest.approx(1.0, abs=0.01)  # the same band, widened only where it narrows
        assert row["ratio_95"][0] <= 1.0 + 0.01 and row["ratio_95"][1] >= 1.0 - 0.01
        assert 0.74 <= row["coverage_80"] <= 0.86
        # where the 20-candle estimate of a constant volatility happens to be low, the band is too narrow
        low, mid, high = row["coverage_80_by_volatility"]
        assert 0.6 <= low < high <= 0.95 and 0.7 <= mid <= 0.9
        # the whole distribution alike: the same CRPS, a flat PIT, no skill over itself
        assert row["crps_ratio"] == pytest.approx(1.0, abs=0.01)
        assert sum(row["pit_histogram"]) == pytest.approx(1.0)
        if h <= 5:  # longer moves overlap: 2,700 origins hold too few independent ones for a 10-bin test
            assert all(0.07 <= share <= 0.13 for share in row["pit_histogram"]), row["pit_histogram"]
        above = row["events"]["above_origin"]
        assert abs(above["brier_skill"]) < 0.01 and 0.2 < above["brier"] < 0.3
        assert sum(b["n"] for b in above["reliability"]) == row["origins"]
        for event in ("touch_band_upper", "touch_band_lower"):  # judged on a thinned subset, on paths
            touch = row["events"][event]
            assert 0 < touch["origins"] <= 1000 and abs(touch["brier_skill"]) < 0.01 and 0 < touch["brier"] < 0.25
    assert same["1"]["independence"]["p_value"] > 0.001  # a random walk's misses do not cluster
    wide = band_every_candle(_band(candles, wider=2.0), candles, (TEST, end), (VALID, TEST), "1d").summary()
    for h in JUDGED_HORIZONS:
        assert wide[str(h)]["ratio_95"][0] > 1.05 and wide[str(h)]["coverage_80"] > 0.95
        assert wide[str(h)]["crps_ratio_95"][0] > 1.0
        assert wide[str(h)]["events"]["touch_band_upper"]["brier_skill_95"][1] < 0  # it expects touches that come rarely
        pits = wide[str(h)]["pit_histogram"]  # too wide: the outcomes crowd the middle levels
        assert pits[0] < 0.06 and pits[-1] < 0.06 and max(pits[4:6]) > 0.14


def test_a_band_of_the_wrong_scale_misses_in_storms_and_the_misses_cluster() -> None:
    """Volatility that switches regime every 60 candles: the 20-candle band follows it with a lag,
    so it misses most just after the calm turns wild, in runs."""
    candles = _walks(storm=True, seed=1)
    end = pd.Timestamp(candles["X:C0USD"]["timestamp"].iloc[-1])
    row = band_every_candle(_band(candles), candles, (TEST, end), (VALID, TEST), "1d").summary()["1"]
    assert row["independence"]["p_miss_after_miss"] > row["independence"]["p_miss_after_hit"]
    assert row["independence"]["p_value"] < 1e-3


def test_independence_counts_consecutive_outcomes_of_one_series_only() -> None:
    rng = np.random.default_rng(3)
    scattered = rng.random(20_000) < 0.2
    series, position = np.repeat(np.arange(4), 5000), np.tile(np.arange(5000), 4)
    assert independence_test(scattered, series, position).p_value > 0.01
    runs = np.repeat(rng.random(2000) < 0.2, 10)  # misses in runs of ten
    clustered = independence_test(runs, series, position)
    assert clustered.p_value < 1e-12 and clustered.p_miss_after_miss > 0.8
    # every other position missing: no two outcomes consecutive, nothing to count
    assert independence_test(runs, series, position * 2).transitions == 0
    assert independence_test(runs[::-1], series, position[::-1]).transitions == clustered.transitions


def test_chi_squared_tails_and_windows_pooled() -> None:
    for x, df, p in [(3.841, 1, 0.05), (6.635, 1, 0.01), (11.070, 5, 0.05), (27.688, 13, 0.01), (0.0, 3, 1.0)]:
        assert chi2_sf(x, df) == pytest.approx(p, abs=2e-4)
    candles = _walks()
    end = pd.Timestamp(candles["X:C0USD"]["timestamp"].iloc[-1])
    halves = [band_every_candle(_band(candles), candles, (a, b), (VALID, TEST), "1d")
              for a, b in ((TEST, TEST + pd.Timedelta(days=200)), (TEST + pd.Timedelta(days=200), end))]
    pooled = Judged.joined(halves).summary()
    assert pooled["1"]["origins"] == sum(h.summary()["1"]["origins"] for h in halves)
    assert pooled["1"]["independence"]["windows"] == 2
    assert len(set(halves[0].blocks) & set(Judged.joined(halves).blocks[len(halves[0].blocks):])) == 0
