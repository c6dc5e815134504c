"""How well the 80 % band covers on real test windows, with and without adapting it to each
symbol's recent misses (`training.calibration.band_adjustments`, adaptive conformal inference).

    .venv/bin/python -m bench.band_adaptation [--timeframes 1d,4h,1h] [--rates 0,0.02]

The band measured is naive's (the last close, with the validation quantiles of volatility-scaled
moves): the forecaster `auto` deploys on every window of bench.honesty, and the band any flat step
carries. Per timeframe and test window (bench.honesty's windows and split: validation is the
quarter of the history before the window, after a purge gap), the quantiles come from validation's
moves as the deployed forecaster sees them (candles before the window only); every candle of the
window whose 30 next candles are known is an origin (thinned to at most 3,000), and each origin's
band adapts by replaying only the candles of its own serving window. Rate 0 is the baseline:
validation's band as it is. Each rate is measured with validation's pooled band and with the band
`fit_calibration` now fits (`band_quantiles`: pooled at h = 1, moving to the wider of validation's
two halves at h = 30, a margin for a new regime).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.honesty import FRACTIONS, PLANS, fill_lake
from config import HORIZON
from features.profiles import profile_for
from training.calibration import band_adjustments, band_quantiles, horizon_scale, naive_move_halves
from training.evaluation import in_period
from training.stages import load_candles, split_for
from training.volatility import ROLLING, BandScale, rolling_return_std

MAX_ORIGINS = 3000
GOAL = (0.77, 0.83)


def test_origins(candles: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp,
                 window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(origins x window) closes up to each origin, (origins x HORIZON) the closes after it, and
    each origin's time (naive UTC)."""
    picks = []
    for frame in candles.values():
        rows = np.flatnonzero(in_period(frame, start, end))
        picks += [(frame, i) for i in rows[(rows >= window - 1) & (rows + HORIZON < len(frame))]]
    picks = picks[:: max(1, len(picks) // MAX_ORIGINS)]
    close = np.stack([f["close"].to_numpy(np.float64)[i - window + 1: i + 1] for f, i in picks])
    future = np.stack([f["close"].to_numpy(np.float64)[i + 1: i + HORIZON + 1] for f, i in picks])
    times = np.array([f["timestamp"].iloc[i].tz_localize(None).to_datetime64() for f, i in picks])
    return close, future, times


def coverage(close: np.ndarray, future: np.ndarray, lo: np.ndarray, hi: np.ndarray, vol_window: int,
             rate: float) -> tuple[float, float]:
    """Coverage at h = 1 and h = 30 of naive's band, adapted at `rate` (0: as validated)."""
    log_close = np.log(close)
    sigma = rolling_return_std(log_close, vol_window)[:, -1]
    z = (np.log(future) - log_close[:, -1:]) / horizon_scale(sigma, HORIZON)
    widen = band_adjustments(close, BandScale(ROLLING, vol_window), lo, hi, rate)
    inside = (z >= lo[None, :] - widen) & (z <= hi[None, :] + widen)
    return float(inside[:, 0].mean()), float(inside[:, HORIZON - 1].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeframes", default="1d,4h,1h")
    parser.add_argument("--rates", default="0,0.02")
    args = parser.parse_args()
    configs = [(float(r), margin) for r in args.rates.split(",") for margin in (False, True)]
    hits = {c: [0, 0] for c in configs}
    misses: dict[tuple[float, bool], list[tuple[float, float]]] = {c: [] for c in configs}
    windows = 0
    print(f"80 % band of the naive forecast: coverage at h = 1 / h = 30 per adaptation rate, with validation's "
          f"pooled band and with the regime margin (goal {GOAL[0]}-{GOAL[1]})")
    print(f"{'timeframe':<9} {'test window':<12} {'origins':>7}  "
          + "  ".join(f"{f'{r}' + (' margin' if m else ' pooled'):>13}" for r, m in configs))
    for timeframe in args.timeframes.split(","):
        plan, profile = PLANS[timeframe], profile_for(timeframe)
        for start, end in plan.windows:
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                candles = load_candles(tmp, fill_lake(Path(tmp), plan, timeframe, end, None), timeframe, pd.Timestamp(end))
            # what the deployed forecaster knows: candles before the window only (validation ends at
            # the window's start, so its last origins' moves would otherwise run into the test)
            before = {t: f[f["timestamp"] < pd.Timestamp(start)] for t, f in candles.items()}
            before = {t: f for t, f in before.items() if len(f) > profile.warmup}
            split = split_for(before, timeframe, FRACTIONS)
            halves = naive_move_halves(before, split.valid_start, split.valid_end,
                                       BandScale(ROLLING, profile.volatility_window), HORIZON)
            bands = {margin: band_quantiles(np.concatenate(halves), halves if margin else None)
                     for margin in (False, True)}
            close, future, _ = test_origins(candles, pd.Timestamp(start), pd.Timestamp(end), profile.serving_window)
            cells = []
            for rate, margin in configs:
                lo, hi = bands[margin]
                h1, h30 = coverage(close, future, lo, hi, profile.volatility_window, rate)
                hits[(rate, margin)][0] += GOAL[0] <= h1 <= GOAL[1]
                hits[(rate, margin)][1] += GOAL[0] <= h30 <= GOAL[1]
                misses[(rate, margin)].append((abs(h1 - 0.8), abs(h30 - 0.8)))
                cells.append(f"{h1:.3f} / {h30:.3f}")
            windows += 1
            print(f"{timeframe:<9} {start:%Y-%m-%d}   {len(close):>7}  " + "  ".join(f"{c:>13}" for c in cells)
                  + f"   ({time.perf_counter() - started:.0f}s)", flush=True)
    print(f"{'within goal':<22} {'':>7}  " + "  ".join(f"{f'{a}/{windows} {b}/{windows}':>13}" for a, b in hits.values()))
    print(f"{'mean |coverage - 0.8|':<22} {'':>7}  "
          + "  ".join(f"{f'{np.mean([m[0] for m in ms]):.3f} / {np.mean([m[1] for m in ms]):.3f}':>13}"
                      for ms in misses.values()))


if __name__ == "__main__":
    main()
