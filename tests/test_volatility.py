"""The band's volatility model (training/band/scale.py), its choice on validation
(training/band/choice.py) and the served band's shape (training/band/band.py): pure functions, no
Ray, no database."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.band.band import Band, widening
from training.band.choice import choose_band_scale, held_out_band_score
from training.band.quantiles import naive_move_halves
from training.band.scale import HAR, HAR_WINDOW_SETS, ROLLING, BandScale, fit_har, realised_volatility, rolling_return_std
from training.calibration import Calibration
from training.dataset import time_split

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
    cal = Calibration.identity(H, har)
    assert Calibration.from_dict(cal.as_dict(), 20) == cal
    # an artifact saved before the band was one record: flat quantiles, no volatility model
    old = {"shrink": [0.0] * H, "band_lo": [-1.0] * H, "band_hi": [1.0] * H, "conf_a": [0.0] * H,
           "conf_b": [0.0] * H, "naive_lo": [-1.1] * H, "naive_hi": [1.2] * H, "n_origins": 50, "adapt_rate": 0.02}
    band = Calibration.from_dict(old, 14).band
    assert band.scale == BandScale(ROLLING, 14) and band.lo == (-1.0,) * H and band.naive_hi == (1.2,) * H
    assert band.market_rate == 0.0 and band.fitted_until == ""
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


def test_a_served_band_is_its_quantiles_times_the_scale_at_the_last_candle_moved_out_by_the_shift() -> None:
    frames = _clustered(4, 700, seed=8)
    scale = fit_har(frames, frames["X:C0USD"]["timestamp"].iloc[500], H, 20)
    close = np.stack([f["close"].to_numpy()[-320:] for f in frames.values()])
    at = scale.at(np.log(close), H)
    naive, model = tuple(np.linspace(-1.0, -1.6, H)), tuple(np.linspace(0.9, 1.5, H))
    band = Band(scale, tuple(-np.asarray(model)), model, naive, tuple(-np.asarray(naive)))
    flat = np.zeros((4, H))
    served = band.served(flat, close)
    # every step states the last close: naive's quantiles, and the forecast's band is naive's
    np.testing.assert_allclose(served.lower, at * np.asarray(naive), rtol=1e-12)
    np.testing.assert_allclose(served.upper, -at * np.asarray(naive), rtol=1e-12)
    np.testing.assert_array_equal(served.naive_lower, served.lower)
    # a shift moves each side out by that many scale units
    shift = np.full((4, H), 0.25)
    wider = band.served(flat, close, shift)
    np.testing.assert_allclose(wider.upper - wider.lower, served.upper - served.lower + 0.5 * at, rtol=1e-9)
    # steps that keep a move take the model's quantiles around the centre, which the band holds
    centre = np.full((4, H), 0.02)
    moved = band.served(centre, close)
    np.testing.assert_allclose(moved.upper - moved.lower, 2 * at * np.asarray(model), rtol=1e-9)
    assert (moved.lower <= centre).all() and (moved.upper >= centre).all()
    np.testing.assert_allclose(moved.naive_lower, served.naive_lower)
    # a band narrowed past its width by a negative shift is a point, never inverted
    point = band.served(flat, close, np.full(H, -5.0))
    assert (point.upper >= point.lower).all()


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
