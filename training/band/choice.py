"""Which volatility model scales a timeframe's band: the one whose band scores best on
validation by the interval score (calibration and sharpness together), the rolling window
being the fallback candidate. Chosen once per fit, on naive's band (the band every flat step
states, and what the scale must get right whatever the model's centre)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.band.quantiles import BAND_QUANTILES, naive_move_pairs
from training.band.scale import HAR_WINDOW_SETS, ROLLING, BandScale, fit_har
from training.dataset import Split
from training.scores import interval_score


@dataclass
class ScaleChoice:
    """The chosen scale, each candidate's held-out interval score per horizon on validation, and
    validation's naive moves in the chosen scale's units per half (`naive_move_halves`), which the
    band's quantiles are fitted on."""
    scale: BandScale
    scores: dict[str, list[float]]
    halves: list[np.ndarray]

    def describe(self) -> str:
        if len(self.scores) < 2:
            return f"band scale {self.scale.name} (no other candidate)"
        base = np.asarray(self.scores[ROLLING])
        ratios = ", ".join(f"{name} {np.mean(np.asarray(v) / base):.3f}" for name, v in self.scores.items()
                           if name != ROLLING)
        return f"band scale {self.scale.name} (validation interval score / rolling's: {ratios})"


def held_out_band_score(candles: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp, scale: BandScale,
                        horizon: int) -> np.ndarray:
    """Per horizon, the mean interval score (log-return units) of naive's 80 % band in `scale`'s
    units on every candle of [start, end): quantiles fitted on one half of the period scored on
    the other, both ways, so a scale cannot win by fitting the period it is judged on."""
    return halves_band_score(naive_move_pairs(candles, start, end, scale, horizon), start, end)


def halves_band_score(halves: list[tuple[np.ndarray, np.ndarray]], start: pd.Timestamp,
                      end: pd.Timestamp) -> np.ndarray:
    """`held_out_band_score` from the period's halves (`naive_move_pairs`)."""
    if min(len(moves) for moves, _ in halves) < 20:
        raise ValueError(f"too few validation candles between {start} and {end} to score a band")
    total, count = np.zeros(halves[0][0].shape[1]), 0
    for fit, test in ((0, 1), (1, 0)):
        moves, at = halves[fit]
        lo, hi = np.quantile(moves / at, BAND_QUANTILES, axis=0)
        actual, at_test = halves[test]
        total += interval_score(at_test * lo, at_test * hi, actual).sum(axis=0)
        count += len(actual)
    return total / count


def choose_band_scale(candles: dict[str, pd.DataFrame], split: Split, horizon: int, window: int) -> ScaleChoice:
    """Among the rolling window and the HAR models (one per window set, fitted on the train part),
    the one whose band's held-out interval score on validation, averaged over the horizons' ratios
    to the rolling window's, is lowest. Too little history to fit or score one: it is left out;
    too little to score the rolling window: the rolling window, unscored."""
    rolling = BandScale(ROLLING, window)
    candidates = [rolling]
    for windows in HAR_WINDOW_SETS:
        try:
            candidates.append(fit_har(candles, split.train_end, horizon, window, windows))
        except ValueError:
            continue
    halves = {c.name: naive_move_pairs(candles, split.valid_start, split.valid_end, c, horizon) for c in candidates}
    scores: dict[str, np.ndarray] = {}
    for candidate in candidates:
        try:
            scores[candidate.name] = halves_band_score(halves[candidate.name], split.valid_start, split.valid_end)
        except ValueError:
            return ScaleChoice(rolling, {}, [moves / at for moves, at in halves[ROLLING]])
    base = scores[ROLLING]
    best = min(candidates, key=lambda c: float(np.mean(scores[c.name] / base)))
    return ScaleChoice(best, {k: v.round(6).tolist() for k, v in scores.items()},
                       [moves / at for moves, at in halves[best.name]])
