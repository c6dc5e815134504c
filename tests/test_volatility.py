"""The band's volatility model (training/volatility.py), its choice on validation (training/band.py)
and the band's shape across horizons (calibration.widening): pure functions, no Ray, no database."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.band import choose_band_scale, held_out_band_score
from training.calibration import (
    Calibration,
    band_adjustments,
    naive_move_halves,
    served_band,
    served_scale,
    widening,
)
from training.dataset import time_split
from training.volatility import HAR, HAR_WINDOW_SETS, ROLLING, BandScale, fit_har, realised_volatility, rolling_return_std

H = 30


def _clustered(coins: int, candles: int, seed: int) -> dict[str, pd.DataFrame]:
    """Daily closes whose log volatility is a fast and a slow AR(1) around each coin's own level
    (coins up to 8x apart): volatility clusters over days and over months and mean-reverts, as
    real coins' does, which one 20-candle window cannot tell apart."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2018-01-01", periods=candles, freq="1D", tz="UTC")
    frames = {}
    for k in range(coins):
        level = np.log(0.005 * (1 + k))
        fast, slow = np.zeros(candles), np.zeros(candles)
        for t in range(1, candles):
            fast[t] = 0.7 * fast[t - 1] + rng.normal(0.0, 0.35)
            slow[t] = 0.995 * slow[t - 1] + rng.normal(0.0, 0.06)
        log_vol = level + fast + slow
        close = 100 * np.exp(np.cumsum(np.exp(log_vol) * rng.standard_normal(candles)))
        frames[f"X:C{k}USD"] = pd.DataFrame({"timestamp": stamps, "close": close})
    return frames


def test_realised_volatility_is_the_root_mean_square_of_the_last_returns() -> None:
    log_close = np.log(np.array([[100.0, 101.0, 99.0, 99.0, 102.0]]))
    rets = np.diff(log_close[0])
    rv = realised_volatility(log_close, 2)
    assert np.isnan(rv[0, :2]).all()
    np.testing.assert_allclose(rv[0, 2:], [np.sqrt(np.mean(rets[i - 2:i] ** 2)) for i in range(2, 5)])
    # the rolling kind is the standard deviation of the same returns (the band's scale until now)
    np.testing.assert_allclose(rolling_return_std(log_close, 2)[0, 2:], [np.std(rets[i - 2:i]) for i in range(2, 5)])


def test_a_scale_saved_with_a_model_comes_back_and_old_models_keep_the_rolling_window() -> None:
    frames = _clustered(4, 900, seed=1)
    har = fit_har(frames, pd.Timestamp("2020-01-01", tz="UTC"), H, 20)
    assert har.kind == HAR and len(har.coef) == H
    back = BandScale.from_dict(har.as_dict())
    assert back == har
    cal = Calibration.identity(H)
    assert cal.scale(20) == BandScale(ROLLING, 20)  # saved before the band had a volatility model
    cal.band_scale = har.as_dict()
    assert Calibration.from_dict(cal.as_dict()).scale(20) == har
    log_close = np.log(np.stack([f["close"].to_numpy()[-320:] for f in frames.values()]))
    np.testing.assert_allclose(back.at(log_close, H), har.at(log_close, H))


def test_the_scale_of_a_frozen_coin_falls_back_to_the_others() -> None:
    frames = _clustered(3, 400, seed=2)
    log_close = np.log(np.stack([f["close"].to_numpy()[-320:] for f in frames.values()]))
    log_close[1] = log_close[1, 0]  # a coin whose price has not moved: zero volatility
    for scale in (BandScale(ROLLING, 20), fit_har(frames, pd.Timestamp("2030-01-01", tz="UTC"), H, 20)):
        at = scale.at(log_close, H)
        assert np.isfinite(at).all() and (at > 0).all()
        np.testing.assert_allclose(at[1], np.median(at[[0, 2]], axis=0))
        assert (np.diff(at, axis=1) > 0).all()  # further out, further to move


def test_where_volatility_clusters_validation_chooses_har_and_its_band_is_sharper() -> None:
    frames = _clustered(12, 2000, seed=3)
    first, last = frames["X:C0USD"]["timestamp"].iloc[[250, -1]]
    split = time_split(first, last, "1d", (0.5, 0.25, 0.25))
    choice = choose_band_scale(frames, split, H, 20)
    assert choice.scale.kind == HAR, choice.describe()
    assert set(choice.scores) == {ROLLING, *(f"har{'-'.join(map(str, w))}" for w in HAR_WINDOW_SETS)}
    # on the holdout, which neither the fit nor the choice saw
    end = last + pd.Timedelta(days=1)
    rolling = held_out_band_score(frames, split.holdout_start, end, BandScale(ROLLING, 20), H)
    har = held_out_band_score(frames, split.holdout_start, end, choice.scale, H)
    assert (har / rolling).mean() < 0.985 and (har / rolling).max() < 0.99
    # the band's quantiles are fitted on validation's moves in the chosen scale's units
    halves = naive_move_halves(frames, split.valid_start, split.valid_end, choice.scale, H)
    for kept, fresh in zip(choice.halves, halves, strict=True):
        np.testing.assert_array_equal(kept, fresh)


def test_a_served_band_takes_the_scale_at_the_last_candle_from_one_pass() -> None:
    frames = _clustered(4, 700, seed=8)
    scale = fit_har(frames, frames["X:C0USD"]["timestamp"].iloc[500], H, 20)
    close = np.stack([f["close"].to_numpy()[-320:] for f in frames.values()])
    lo, hi = np.full(H, -1.3), np.full(H, 1.3)
    at, shift = served_scale(close, scale, lo, hi, 0.02)
    np.testing.assert_allclose(at, scale.at(np.log(close), H), rtol=1e-9)
    np.testing.assert_array_equal(shift, band_adjustments(close, scale, lo, hi, 0.02))
    lower, upper = served_band(at, lo, hi, shift)
    assert (lower <= 0).all() and (upper >= lower).all()
    np.testing.assert_allclose(upper - lower, at * np.maximum(2.6 + 2 * shift, 0.0), rtol=1e-12)
    # without adaptation: the same scale, read from the last candles only, and no shift
    still, none = served_scale(close, scale, lo, hi, 0.0)
    np.testing.assert_allclose(still, at, rtol=1e-9)
    assert not none.any()


def test_where_volatility_is_constant_har_cannot_buy_anything_but_stays_close() -> None:
    rng = np.random.default_rng(4)
    stamps = pd.date_range("2018-01-01", periods=1600, freq="1D", tz="UTC")
    frames = {f"X:W{k}USD": pd.DataFrame({"timestamp": stamps,
                                          "close": 100 * np.exp(np.cumsum(rng.normal(0, 0.02 * (1 + k), 1600)))})
              for k in range(6)}
    split = time_split(stamps[250], stamps[-1], "1d", (0.6, 0.4, 0.0))
    choice = choose_band_scale(frames, split, H, 20)
    ratios = np.asarray(choice.scores[choice.scale.name]) / np.asarray(choice.scores[ROLLING])
    assert ratios.mean() <= 1.0 and (np.abs(ratios - 1) < 0.05).all()


def test_a_band_never_narrows_further_out_and_only_widens() -> None:
    rng = np.random.default_rng(5)
    lower = -np.abs(rng.normal(0.05, 0.02, (50, H))).cumsum(axis=1) * 0.3
    upper = np.abs(rng.normal(0.05, 0.02, (50, H))).cumsum(axis=1) * 0.3
    lower[:, 20:23] *= 0.5  # the zig-zag a person reads as noise
    wide_lo, wide_hi = widening(lower, upper)
    assert (np.diff(wide_hi - wide_lo, axis=1) >= -1e-12).all()
    assert (wide_lo <= lower).all() and (wide_hi >= upper).all()
    np.testing.assert_allclose(wide_lo + wide_hi, lower + upper)  # the centre stays
    steady_lo, steady_hi = widening(*widening(lower, upper))
    np.testing.assert_allclose(steady_lo, wide_lo)  # a band that never narrows is left alone
    np.testing.assert_allclose(steady_hi, wide_hi)
