"""The band's market-wide adaptation (training/band/market.py): the replay, its causality, its
lookup by origin time, what a backtest and a serving replica feed the forecaster. Pure functions
and a lake in a temporary folder; no Ray, no database."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd

import training.band.market as market_module
from serve_app.active_models import ActiveModels
from storage.lake import Lake
from training.band.band import Band
from training.band.market import MarketReplay, MarketTrack, carried_on, horizon_rates, market_track, market_widening, replay_since
from training.band.quantiles import BAND_MISS
from training.band.scale import ROLLING, BandScale
from training.calibration import Calibration
from training.forecaster import ForecastArrays, ForecastModel, RawForecast, Windows, calibrated_arrays

H = 30
EDGE = 1.2816  # the 80 % band of a random walk in its own sigma sqrt(h) units


def _moves(coins: int, candles: int, spread: np.ndarray, seed: int) -> np.ndarray:
    """(coins x candles x H) h-step moves in band units of a market whose true spread (1 = the
    fitted band's) is `spread` at each candle; NaN where the outcome lies beyond the last candle."""
    rng = np.random.default_rng(seed)
    steps = rng.standard_normal((coins, candles + H)) * np.concatenate([spread, np.full(H, spread[-1])])
    paths = np.cumsum(steps, axis=1)
    z = np.full((coins, candles, H), np.nan)
    for h in range(1, H + 1):
        z[:, : candles - h, h - 1] = (paths[:, h: candles] - paths[:, : candles - h]) / np.sqrt(h)
    return z


def _reference(z: np.ndarray, lo: np.ndarray, hi: np.ndarray, rate: float) -> np.ndarray:
    """The definition, one origin at a time: the widening at t sums rate x (share missed - 0.2)
    over every origin s whose h-step outcome has closed by t (s + h <= t), each judged against the
    band in force at s."""
    coins, candles, horizons = z.shape
    shift = np.zeros((candles, horizons))
    for h in range(horizons):
        excess = np.full(candles, np.nan)
        for t in range(candles):
            shift[t, h] = rate * sum(excess[s] for s in range(0, t - h) if np.isfinite(excess[s]))
            seen = z[:, t, h][np.isfinite(z[:, t, h])]
            if len(seen):
                missed = (seen < lo[h] - shift[t, h]) | (seen > hi[h] + shift[t, h])
                excess[t] = missed.mean() - BAND_MISS
    return shift


def test_the_replay_is_the_definition_and_rate_zero_leaves_the_band() -> None:
    z = _moves(6, 80, np.full(80, 1.5), seed=1)[:, :, :5]
    z[2, 10:20] = np.nan  # a coin's gap: it drops out of the share, not into it
    lo, hi = np.full(5, -EDGE), np.full(5, EDGE)
    np.testing.assert_allclose(market_widening(z, lo, hi, 0.05), _reference(z, lo, hi, 0.05), atol=1e-12)
    assert not market_widening(z, lo, hi, 0.0).any()
    rates = horizon_rates(0.01, H)  # a short horizon steps further: its outcomes overlap less
    assert rates[-1] == 0.01 and rates[0] == 0.01 * np.sqrt(H) and (np.diff(rates) < 0).all()
    per_horizon = market_widening(z, lo, hi, rates[:5])
    for h in range(5):
        np.testing.assert_allclose(per_horizon[:, h], _reference(z, lo, hi, float(rates[h]))[:, h], atol=1e-12)


def test_a_market_that_turns_wild_widens_every_band_and_a_calm_one_narrows_them() -> None:
    candles = 600
    lo, hi = np.full(H, -EDGE), np.full(H, EDGE)
    wild = market_widening(_moves(30, candles, np.r_[np.ones(200), np.full(candles - 200, 2.0)], seed=2), lo, hi, 0.05)
    calm = market_widening(_moves(30, candles, np.r_[np.ones(200), np.full(candles - 200, 0.5)], seed=3), lo, hi, 0.05)
    same = market_widening(_moves(30, candles, np.ones(candles), seed=4), lo, hi, 0.05)
    assert (wild[-1] > 0.6).all() and (calm[-1] < -0.3).all()
    assert np.abs(same[-1]).max() < 0.35  # a band that was right stays about right
    # the widened band misses about 20 % of the wild market's later moves, the fixed one far more
    z = _moves(30, candles, np.r_[np.ones(200), np.full(candles - 200, 2.0)], seed=2)[:, 450:540, :]
    shifted = wild[450:540][None, :, :]
    missed = ((z < lo - shifted) | (z > hi + shifted)).mean()
    assert abs(missed - BAND_MISS) < 0.06 and ((z < lo) | (z > hi)).mean() > 0.45


def test_a_widening_uses_only_outcomes_closed_by_its_candle() -> None:
    z = _moves(10, 200, np.full(200, 1.3), seed=5)
    lo, hi = np.full(H, -EDGE), np.full(H, EDGE)
    before = market_widening(z, lo, hi, 0.05)
    t = 120
    later = z.copy()
    for h in range(1, H + 1):
        later[:, t - h + 1:, h - 1] *= 3.0  # every outcome that closes after candle t
    after = market_widening(later, lo, hi, 0.05)
    np.testing.assert_array_equal(before[: t + 1], after[: t + 1])
    assert not np.array_equal(before[t + 1:], after[t + 1:])


def test_an_origin_takes_the_widening_of_the_latest_candle_at_or_before_it() -> None:
    times = pd.date_range("2024-01-01", periods=3, freq="1D")
    track = MarketTrack(pd.DatetimeIndex(times), np.arange(3 * H, dtype=float).reshape(3, H))
    asked = np.array(["2023-12-31", "2024-01-01", "2024-01-02T12:00", "2024-02-01"], dtype="datetime64[ms]")
    got = track.at(asked, H)
    assert not got[0].any()  # before the fit's end: the band as fitted
    np.testing.assert_array_equal(got[1:, 0], [0.0, H, 2 * H])
    newest, widening = track.last(H)
    assert newest == times[-1] and widening[0] == 2 * H


def _coins(n: int = 12, candles: int = 400, end: str = "2024-06-01") -> dict[str, pd.DataFrame]:
    """Daily candles of `n` coins, a random walk of 2 % a day that trends for its last 150
    candles (each return carries on 60 % of the one before): the one-candle scale hardly moves,
    but 30-candle moves grow twice as wide as the band fitted before, on every coin at once."""
    rng = np.random.default_rng(7)
    stamps = pd.date_range(end=end, periods=candles, freq="1D", tz="UTC")
    frames = {}
    for k in range(n):
        shocks = 0.02 * rng.standard_normal(candles)
        returns = shocks.copy()
        for t in range(candles - 150, candles):
            returns[t] = 0.6 * returns[t - 1] + 0.8 * shocks[t]
        close = 100 * np.exp(np.cumsum(returns))
        frames[f"X:C{k}USD"] = pd.DataFrame({"timestamp": stamps, "open": close, "high": close, "low": close,
                                             "close": close, "volume": 1.0})
    return frames


def _band(fitted_until: pd.Timestamp, rate: float = 0.05) -> Band:
    return Band.gaussian(BandScale(ROLLING, 20), H).adapting(rate, fitted_until.isoformat())


def _calibration(fitted_until: pd.Timestamp, rate: float = 0.05) -> Calibration:
    return replace(Calibration.identity(H, BandScale(ROLLING, 20)), n_origins=100, band=_band(fitted_until, rate))


def test_a_model_saved_before_the_market_adaptation_keeps_its_band() -> None:
    old = Calibration.identity(H, BandScale(ROLLING, 20)).as_dict()
    del old["band"]["market_rate"], old["band"]["fitted_until"]
    back = Calibration.from_dict(old, 20)
    assert back.band.market_rate == 0.0 and back.band.fitted_until == ""
    cal = _calibration(pd.Timestamp("2024-01-01", tz="UTC"))
    assert Calibration.from_dict(cal.as_dict(), 20) == cal
    band = cal.band
    short = replace(cal, shrink=cal.shrink[:10], conf_a=cal.conf_a[:10], conf_b=cal.conf_b[:10],
                    band=replace(band, lo=band.lo[:10], hi=band.hi[:10], naive_lo=band.naive_lo[:10],
                                 naive_hi=band.naive_hi[:10]))
    assert short.extended(H).band.market_rate == 0.05 and short.extended(H).band.fitted_until == band.fitted_until
    assert len(short.extended(H).band.naive_lo) == H
    coins = _coins()
    assert not len(market_track(coins, replace(band, market_rate=0.0), H).times)


class _Flat(ForecastModel):
    """A forecaster that states the last close: naive's band as every forecaster serves it."""

    kind = "flat"

    def predict_windows(self, windows: Windows, steps: int = H, shift: np.ndarray | None = None) -> ForecastArrays:
        n = len(windows)
        times = np.tile(np.arange(steps).astype("datetime64[D]").astype("datetime64[ms]"), (n, 1))
        flat, sig = np.zeros((n, steps)), np.full(n, 0.02)
        return calibrated_arrays(RawForecast(flat, flat, flat, sig, times, pd.DataFrame(index=range(n))),
                                 windows.close[:, -1], self.calibration, windows.close, shift)


def _width(model: ForecastModel, windows: Windows, shift: np.ndarray | None = None) -> np.ndarray:
    out = _Flat(model.timeframe, [], model.calibration).predict_windows(windows, H, shift)
    return np.log(out.upper / out.lower)


def test_a_backtest_widens_each_origins_band_by_the_market_in_force_then() -> None:
    coins = _coins()
    stamps = next(iter(coins.values()))["timestamp"]
    fitted_until = stamps.iloc[-150]  # the market began to trend when the fit ended
    model = ForecastModel("1d", [], _calibration(fitted_until))
    rows = [len(stamps) - 140, len(stamps) - 40]  # soon after the turn, and 100 candles later
    frames = [f.iloc[r - 60: r + 1] for f in coins.values() for r in rows]
    windows = Windows.from_frames(frames, 60)
    shift = MarketReplay(coins).shift_at(model.calibration.band, windows.stamps[:, -1], H)
    early, late = shift[0::2], shift[1::2]
    assert (late[:, -1] > early[:, -1] + 0.3).all()  # the later origin has seen the trending market miss
    assert (_width(model, windows, shift)[1::2, -1] > 1.2 * _width(model, windows)[1::2, -1]).all()


def test_a_serving_replica_widens_the_band_from_its_lake_and_drops_a_stale_widening(tmp_path) -> None:
    coins = _coins(end="2024-06-01")
    lake = Lake(tmp_path)
    for ticker, frame in coins.items():
        lake.write(ticker, "1d", frame)
    fitted_until = next(iter(coins.values()))["timestamp"].iloc[-150]
    forecaster = _Flat("1d", [], _calibration(fitted_until))
    models = ActiveModels(SimpleNamespace(active=lambda tf: None), ["1d"])  # type: ignore[arg-type]
    models._models["1d"] = (SimpleNamespace(id=1, version="v1"), forecaster)  # type: ignore[assignment]
    said = models.track_market(lake, pd.Timestamp("2024-06-02", tz="UTC"))
    shift = models.market_shift("1d")
    assert shift is not None and shift[-1] > 0.3, said
    assert "12 coins" in said["1d"]
    expected = market_track(coins, forecaster.calibration.band, H).last(H)[1]
    np.testing.assert_allclose(shift, expected)
    # the forecast served is widened by it, the forecaster itself unchanged
    window = next(iter(coins.values())).iloc[-forecaster.window:]
    assert forecaster.calibration.band.market_rate == 0.05
    widened = models.forecast("1d", window, H).steps[-1]
    plain = forecaster.forecast(window, H).steps[-1]
    assert widened.upper - widened.lower > 1.2 * (plain.upper - plain.lower)
    said = models.track_market(lake, pd.Timestamp("2024-09-01", tz="UTC"))  # the lake stopped 3 months ago
    assert models.market_shift("1d") is None and "validated one" in said["1d"]


def _upto(coins: dict[str, pd.DataFrame], end: pd.Timestamp, since: pd.Timestamp | None = None) -> dict[str, pd.DataFrame]:
    return {t: f[(f["timestamp"] <= end) & (f["timestamp"] >= (since if since is not None else f["timestamp"].iloc[0]))]
            for t, f in coins.items()}


def test_a_track_carried_on_over_new_candles_states_what_the_whole_replay_does() -> None:
    coins = _coins()
    stamps = next(iter(coins.values()))["timestamp"]
    band = _band(stamps.iloc[-150])
    track = market_track(_upto(coins, stamps.iloc[-120]), band, H)
    for cut in (-119, -100, -31, -1):  # one candle more, a few, more than a horizon, to the end
        first = track.times[track.resumes_at(H)]
        since = replay_since(first, band, pd.Timedelta(days=1))
        carried = carried_on(track, _upto(coins, stamps.iloc[cut], since.tz_localize("UTC")), band, H)
        whole = market_track(_upto(coins, stamps.iloc[cut]), band, H)
        assert carried is not None and carried.times.equals(whole.times)
        np.testing.assert_allclose(carried.shift, whole.shift, atol=1e-12)
        track = carried
    assert np.abs(track.shift[-1]).max() > 0.3  # the trending market moved the band
    filled = dict(coins)  # a coin's candle times changed where the track already stands
    ticker = next(iter(coins))
    filled[ticker] = coins[ticker].assign(timestamp=coins[ticker]["timestamp"] + pd.Timedelta(hours=12))
    assert carried_on(track, filled, band, H) is None
    assert carried_on(MarketTrack(pd.DatetimeIndex([]), np.zeros((0, H))), coins, band, H) is None


def test_a_serving_replica_carries_its_track_on_as_the_lake_grows(tmp_path, monkeypatch) -> None:
    coins = _coins(end="2024-06-01")
    stamps = next(iter(coins.values()))["timestamp"]
    lake = Lake(tmp_path)
    for ticker, frame in coins.items():
        lake.write(ticker, "1d", frame[frame["timestamp"] <= stamps.iloc[-40]])
    forecaster = ForecastModel("1d", [], _calibration(stamps.iloc[-150]))
    models = ActiveModels(SimpleNamespace(active=lambda tf: None), ["1d"])  # type: ignore[arg-type]
    models._models["1d"] = (SimpleNamespace(id=1, version="v1"), forecaster)  # type: ignore[assignment]
    models.track_market(lake, pd.Timestamp("2024-06-02", tz="UTC"))
    for ticker, frame in coins.items():
        lake.write(ticker, "1d", frame)
    replays = []
    monkeypatch.setattr(market_module, "market_track", lambda *a: replays.append(a) or market_track(*a))
    models.track_market(lake, pd.Timestamp("2024-06-02", tz="UTC"))
    assert not replays  # carried on, not replayed from the end of validation
    assert models._reads is not None
    read = models._reads.files_read
    models.track_market(lake, pd.Timestamp("2024-06-02", tz="UTC"))
    assert models._reads.files_read == read  # the lake unchanged: no file read again
    np.testing.assert_allclose(models.market_shift("1d"), market_track(coins, forecaster.calibration.band, H).last(H)[1],
                               atol=1e-12)
    models._models["1d"] = (SimpleNamespace(id=2, version="v2"), forecaster)  # type: ignore[assignment]
    models.track_market(lake, pd.Timestamp("2024-06-02", tz="UTC"))
    assert len(replays) == 1  # a new model replays its own track
