"""Which volatility model scales a timeframe's band: the one whose band scores best on
validation by the interval score (calibration and sharpness together), the rolling window
being the fallback candidate. Chosen once per fit, on naive's band (the band every flat step
states, and what the scale must get right whatever the model's centre)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.calibration import BAND_QUANTILES, naive_moves
from training.dataset import Split
from training.scores import interval_score
from training.volatility import HAR, ROLLING, BandScale, fit_har


@dataclass
class ScaleChoice:
    """The chosen scale, and each candidate's held-out interval score per horizon on validation."""
    scale: BandScale
    scores: dict[str, list[float]]

    def describe(self) -> str:
        if len(self.scores) < 2:
            return f"band scale {self.scale.kind} (no other candidate)"
        ratio = np.mean(np.asarray(self.scores[HAR]) / np.asarray(self.scores[ROLLING]))
        return f"band scale {self.scale.kind} (validation interval score har/rolling {ratio:.3f})"


def held_out_band_score(candles: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp, scale: BandScale,
                        horizon: int) -> np.ndarray:
    """Per horizon, the mean interval score (log-return units) of naive's 80 % band in `scale`'s
    units on every candle of [start, end): quantiles fitted on one half of the period scored on
    the other, both ways, so a scale cannot win by fitting the period it is judged on."""
    mid = start + (end - start) / 2
    halves = [naive_moves(candles, a, b, scale, horizon) for a, b in ((start, mid), (mid, end))]
    if min(len(moves) for moves, _ in halves) < 20:
        raise ValueError(f"too few validation candles between {start} and {end} to score a band")
    total, count = np.zeros(horizon), 0
    for fit, test in ((0, 1), (1, 0)):
        moves, at = halves[fit]
        lo, hi = np.quantile(moves / at, BAND_QUANTILES, axis=0)
        actual, at_test = halves[test]
        total += interval_score(at_test * lo, at_test * hi, actual).sum(axis=0)
        count += len(actual)
    return total / count


def choose_band_scale(candles: dict[str, pd.DataFrame], split: Split, horizon: int, window: int) -> ScaleChoice:
    """HAR (fitted on the train part) where its band's held-out interval score on validation,
    averaged over the horizons' ratios to the rolling window's, is lower; else the rolling window.
    Too little history for either fit or score: the rolling window."""
    rolling = BandScale(ROLLING, window)
    try:
        har = fit_har(candles, split.train_end, horizon, window)
        scores = {kind.kind: held_out_band_score(candles, split.valid_start, split.valid_end, kind, horizon)
                  for kind in (rolling, har)}
    except ValueError:
        return ScaleChoice(rolling, {})
    better = float(np.mean(scores[HAR] / scores[ROLLING])) < 1.0
    return ScaleChoice(har if better else rolling, {k: v.round(6).tolist() for k, v in scores.items()})
