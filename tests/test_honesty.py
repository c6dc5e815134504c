"""Honest forecasts, as pure functions: shrinkage only as far as validation proves an edge, a
direction and confidence that agree with the close path, `flat` where there is no edge."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accuracy.scoring import aggregate, reliability, score
from tests.sigma_band import SCALE, closes
from tests.sigma_band import fit as _fit
from training.band.market import MarketReplay
from training.band.scale import ROLLING, BandScale
from training.calibration import Calibration, edge_horizon, proven_edge
from training.forecaster import DIRECTION_NAMES, ForecastArrays, RawForecast, answer, calibrated_arrays

H = 30


def _validation(n: int, edge: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw, actual, sigma) where actual = edge * raw + noise, both random walks' cumulative returns."""
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.01, 0.05, n)
    root = np.sqrt(np.arange(1, H + 1))[None, :]
    raw = rng.normal(size=(n, 1)) * sigma[:, None] * root * 0.5
    actual = edge * raw + rng.normal(size=(n, H)) * sigma[:, None] * root
    return raw, actual, sigma


def test_no_edge_means_naive_at_every_horizon() -> None:
    for seed in range(3):
        raw, actual, _ = _validation(600, edge=0.0, seed=seed)
        shrink = proven_edge(raw, actual)
        # noise added to naive's forecast raises its error: nothing passes the one-sided test
        assert (shrink == 0).all(), shrink


def test_a_real_edge_is_kept_but_not_overstated() -> None:
    raw, actual, _ = _validation(3000, edge=1.0, seed=1)
    shrink = proven_edge(raw, actual)
    plain = (raw * actual).sum(axis=0) / (raw**2).sum(axis=0)
    assert (shrink > 0.4).all(), shrink
    np.testing.assert_allclose(shrink, np.clip(plain, 0, 1))  # the fitted share, where proven


def test_an_edge_at_short_horizons_is_kept_there_and_the_path_stops_moving_beyond() -> None:
    """A model that knows part of the next candle's move and nothing after: its edge is real at
    h = 1 and fades as later moves pile up. It is kept from h = 1 while validation proves it, the
    path stays where it got (naive's forecast of the later moves: one continuous path), and
    every horizon beyond states the carried close with confidence 0.5."""
    rng = np.random.default_rng(11)
    n = 4000
    sigma = np.full(n, 0.02)
    moves = rng.normal(0, 0.02, (n, H))
    actual = np.cumsum(moves, axis=1)
    # the first move, noisily, and a guess at the later ones that is pure noise, growing with h
    raw = 0.6 * moves[:, :1] + rng.normal(0, 0.016, (n, 1)) + rng.normal(0, 0.01, (n, H)).cumsum(axis=1)
    times = np.sort(rng.integers(0, 2000, n)).astype("datetime64[D]")
    cal = _fit(raw, actual, sigma, times)
    edge = cal.edge_horizon
    assert 1 <= edge < H and all(x > 0 for x in cal.shrink[:edge]) and set(cal.shrink[edge:]) == {0.0}, cal.shrink
    out = _forecast(cal, raw[:200], sigma[:200])
    cum = np.log(out.close / 100.0)
    np.testing.assert_allclose(cum[:, edge:], np.repeat(cum[:, edge - 1: edge], H - edge, axis=1))
    assert (np.abs(cum[:, 0]) > 0).mean() > 0.3  # it does state the model's move where it keeps one
    carried = cum[:, edge - 1] != 0
    assert (out.direction[carried, edge:] == np.sign(cum[carried, edge - 1])[:, None]).all()
    assert (out.confidence[:, edge:] == 0.5).all()


def test_edge_horizon_counts_the_leading_proven_horizons() -> None:
    assert edge_horizon(np.array([True, True, False, True])) == 2
    assert edge_horizon(np.array([False, True])) == 0
    assert edge_horizon(np.array([True] * 3)) == 3


def _forecast(cal: Calibration, raw: np.ndarray, sigma: np.ndarray) -> ForecastArrays:
    n = len(raw)
    times = np.tile(np.arange(H).astype("datetime64[D]").astype("datetime64[ms]"), (n, 1))
    zeros = np.zeros_like(raw)
    return calibrated_arrays(RawForecast(raw, zeros, zeros, sigma, times, pd.DataFrame(index=range(n))),
                             np.full(n, 100.0), cal, closes(sigma))


def test_direction_and_confidence_agree_with_the_close_path() -> None:
    raw, actual, sigma = _validation(800, edge=0.6, seed=2)
    cal = _fit(raw, actual, sigma)
    cal.shrink[10:20] = [0.0] * 10  # no proven edge at these horizons
    cal.conf_a[20:25], cal.conf_b[20:25] = [0.0] * 5, [0.0] * 5  # an edge in size, a coin toss in sign
    assert min(cal.shrink[20:25]) > 0
    out = _forecast(cal, raw, sigma)
    moved = np.sign(out.close - 100.0)
    assert (out.direction == moved).all()
    flat = out.direction == 0
    assert flat[:, 10:25].all() and (out.close[flat] == 100.0).all() and (out.confidence[flat] == 0.5).all()
    assert (out.confidence[~flat] > 0.5).all()  # a called direction always claims an edge
    # a flat step carries naive's band around the last close, widened where an earlier step's
    # (the model's) band was wider: no band is narrower at a longer horizon
    root = np.sqrt(np.arange(1, H + 1))
    expected_lo = sigma[:, None] * root[None, :] * np.asarray(cal.band.naive_lo)[None, :]
    expected_hi = sigma[:, None] * root[None, :] * np.asarray(cal.band.naive_hi)[None, :]
    lower, upper = np.log(out.lower / 100.0), np.log(out.upper / 100.0)
    assert (lower[:, 10:20] <= expected_lo[:, 10:20] + 1e-12).all()
    assert (upper[:, 10:20] >= expected_hi[:, 10:20] - 1e-12).all()
    assert (np.diff(upper - lower, axis=1) >= -1e-12).all()
    widened = (upper - lower)[:, 10:20] > (expected_hi - expected_lo)[:, 10:20] + 1e-9
    np.testing.assert_allclose((lower + upper)[:, 10:20][widened], (expected_lo + expected_hi)[:, 10:20][widened])
    np.testing.assert_allclose(lower[:, 10:20][~widened], expected_lo[:, 10:20][~widened])


def test_the_answer_names_flat_steps_and_summarises_the_last_one() -> None:
    raw, actual, sigma = _validation(400, edge=0.6, seed=3)
    cal = _fit(raw, actual, sigma)
    cal.shrink[25:] = [0.0] * 5
    cal = replace(cal, edge_horizon=H)  # kept horizon by horizon (as models saved before edge_horizon): flat beyond
    body = answer(_forecast(cal, raw[:1], sigma[:1]), H, [])
    assert [s.direction for s in body.steps[25:]] == ["flat"] * 5
    assert body.direction == body.steps[-1].direction == "flat"
    assert set(s.direction for s in body.steps) <= set(DIRECTION_NAMES.values())


def test_a_forecaster_without_calibration_states_its_own_forecast() -> None:
    raw, _, sigma = _validation(50, edge=0.0, seed=4)
    out = _forecast(Calibration.identity(H, SCALE), raw, sigma)
    np.testing.assert_allclose(out.cum_return, raw)


def test_live_scoring_leaves_flat_steps_out_of_directional_accuracy() -> None:
    steps = pd.DataFrame({"origin": [100.0] * 4, "close": [101.0, 99.0, 100.0, 100.0], "lower": [90.0] * 4,
                          "upper": [110.0] * 4, "direction": ["up", "down", "flat", "flat"]})
    scored = score(steps, pd.Series([102.0, 101.0, 103.0, 97.0]))
    assert scored["is_accurate"].tolist()[:2] == [1.0, 0.0] and scored["is_accurate"].iloc[2:].isna().all()
    keyed = scored.assign(model_id=1, timeframe="1d", horizon=1, day="2026-11-01", confidence=[0.6, 0.6, 0.5, 0.5])
    assert aggregate(keyed)["directional_accuracy"].item() == 0.5  # one of the two calls
    table = reliability(keyed["confidence"], keyed["is_accurate"])
    assert table["n"].sum() == 2
    only_flat = keyed.iloc[2:]
    assert aggregate(only_flat)["directional_accuracy"].item() == 0.5  # no call: a coin toss


def test_naive_band_comes_from_every_validation_candle() -> None:
    from training.band.quantiles import BAND_QUANTILES, naive_move_halves

    rng = np.random.default_rng(5)
    n = 2000
    stamps = pd.date_range("2022-01-01", periods=n, freq="1D", tz="UTC")
    frames = {f"X:C{i}USDT": pd.DataFrame({"timestamp": stamps, "close": 100 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))})
              for i in range(10)}
    start, end = stamps[500], stamps[1500]
    z = np.concatenate(naive_move_halves(frames, start, end, BandScale(ROLLING, 20), H))
    assert z.shape == (10 * 1000, H)  # every candle of every symbol in [start, end), all horizons known
    lo, hi = np.quantile(z, BAND_QUANTILES, axis=0)
    # a random walk with constant volatility: about the normal 80 % interval at every horizon (a
    # little wider: sigma is estimated from 20 returns), the widths sampled from overlapping moves
    np.testing.assert_allclose(lo, -1.33, atol=0.25)
    np.testing.assert_allclose(hi, 1.33, atol=0.25)


def test_confidence_of_a_model_without_skill_is_a_coin_toss() -> None:
    raw, actual, sigma = _validation(1500, edge=0.0, seed=6)
    cal = _fit(raw, actual, sigma)
    from training.calibration import confidence

    p = confidence(cal, raw, sigma)
    assert np.abs(p - 0.5).mean() < 0.01 and (np.abs(p.mean(axis=0) - 0.5) < 0.02).all()


def test_confidence_of_a_skilled_model_stays_and_is_calibrated() -> None:
    from training.calibration import confidence

    raw, actual, sigma = _validation(3000, edge=1.0, seed=7)
    cal = _fit(raw[:1500], actual[:1500], sigma[:1500])
    p = confidence(cal, raw[1500:], sigma[1500:])
    hit = (np.sign(raw[1500:]) == np.sign(actual[1500:]))
    assert p.mean() > 0.55
    assert abs(p.mean() - hit.mean()) < 0.03  # stated against observed, on origins it never saw


class _Fixed:
    """A candidate whose stated close is given."""

    timeframe, window = "1d", 320

    def __init__(self, cum: np.ndarray) -> None:
        self.cum = cum
        self.calibration, self.meta = Calibration.identity(H, SCALE), {}

    def with_meta(self, **entries):
        return self

    def with_calibration(self, calibration):
        return self

    def predict_windows(self, windows, steps, shift=None):
        return type("Out", (), {"cum_return": self.cum[:, :steps]})()


def _origins(actual: np.ndarray):
    from training.evaluation import Origins
    from training.forecaster import Windows

    n = len(actual)
    stamps = (np.datetime64("2023-01-01T00:00", "ms") + np.arange(n) * np.timedelta64(86_400_000, "ms"))[:, None]
    ones = np.ones((n, 1))
    return Origins(["X:AUSDT"] * n, Windows(ones, ones, ones, ones, ones, stamps, ones), actual, actual, actual)


def test_auto_chooses_a_model_only_where_validation_proves_it_beats_naive() -> None:
    from training.selection import NAIVE, choose_on

    rng = np.random.default_rng(8)
    actual = np.cumsum(rng.normal(0, 0.02, (600, H)), axis=1)
    noise = _Fixed(rng.normal(0, 0.001, (600, H)))  # about naive, proves nothing
    worse = _Fixed(rng.normal(0, 0.05, (600, H)))
    choice = choose_on({"noise": noise, "worse": worse}, _origins(actual), "1d")  # type: ignore[dict-item]
    assert choice.name == NAIVE and choice.validation.scores["worse"] > 1.0
    skilled = _Fixed(0.5 * actual)  # half of every move: a real edge
    choice = choose_on({"noise": noise, "skilled": skilled}, _origins(actual), "1d")  # type: ignore[dict-item]
    assert choice.name == "skilled" and choice.validation.intervals["skilled"][1] < 1.0
    # better than naive over the horizons on average, but worse at the last one: not proven
    cum = 0.5 * actual
    cum[:, -1] = actual[:, -1] + rng.normal(0, 0.3, 600)
    tradeoff = _Fixed(cum)
    choice = choose_on({"noise": noise, "tradeoff": tradeoff}, _origins(actual), "1d")  # type: ignore[dict-item]
    assert choice.validation.intervals["tradeoff"][1] < 1.0 and choice.validation.worst_horizon["tradeoff"] > 1.0
    assert choice.name == NAIVE


def test_auto_keeps_a_model_whose_edge_is_proven_only_at_short_horizons() -> None:
    """Half of the first three moves known, naive's forecast of the rest: better than naive from
    h = 1, never worse, the edge diluted by h = 30. Chosen, with its edge horizons recorded."""
    from training.selection import choose_on

    rng = np.random.default_rng(12)
    moves = rng.normal(0, 0.02, (600, H))
    actual = np.cumsum(moves, axis=1)
    cum = np.repeat(0.5 * actual[:, 2:3], H, axis=1)
    cum[:, :3] = 0.5 * actual[:, :3]
    short = _Fixed(cum)
    noise = _Fixed(rng.normal(0, 0.001, (600, H)))
    choice = choose_on({"noise": noise, "short": short}, _origins(actual), "1d")  # type: ignore[dict-item]
    v = choice.validation
    assert choice.name == "short" and v.edge["short"] >= 3 and v.worst_lower["short"] <= 1.0
    assert v.edge["noise"] == 0 and "edge to h" in choice.describe()


def test_confidence_that_drifts_within_validation_is_not_trusted() -> None:
    from training.calibration import confidence

    first, a1, s1 = _validation(1000, edge=1.0, seed=9)
    second, a2, s2 = _validation(1000, edge=-1.0, seed=10)  # the sign relation flips in the later half
    raw, actual, sigma = np.vstack([first, second]), np.vstack([a1, a2]), np.concatenate([s1, s2])
    times = np.arange(2000).astype("datetime64[D]")
    cal = _fit(raw, actual, sigma, times)
    assert np.abs(confidence(cal, raw, sigma) - 0.5).mean() < 0.02


def _walk(rows: int, candles: int, spread: float, seed: int) -> np.ndarray:
    """Random-walk closes whose one-candle moves have standard deviation `spread`."""
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, spread, size=(rows, candles)), axis=1))


def _replayed_coverage(close: np.ndarray, lo: np.ndarray, hi: np.ndarray, widen: np.ndarray, window: int) -> float:
    """How often the last `h`-candle outcomes of the window fall inside the (widened) h = 1 band."""
    from training.band.scale import rolling_return_std

    log_close = np.log(close)
    sigma = rolling_return_std(log_close, window)[:, -2]
    z = (log_close[:, -1] - log_close[:, -2]) / sigma
    return float(((z >= lo[0] - widen[:, 0]) & (z <= hi[0] + widen[:, 0])).mean())


def test_band_adaptation_widens_a_band_that_misses_and_narrows_one_that_never_does() -> None:
    from bench.yardstick import band_adjustments

    scale = BandScale(ROLLING, 30)
    close = _walk(400, 320, 0.02, seed=5)
    lo, hi = np.full(H, -1.2816), np.full(H, 1.2816)  # the right 80 % band for a random walk, in sigma units
    assert not band_adjustments(close, scale, lo, hi, 0.0).any()  # rate 0: validation's band as it is
    right = band_adjustments(close, scale, lo, hi, 0.02)
    too_narrow = band_adjustments(close, scale, lo / 2, hi / 2, 0.02)
    too_wide = band_adjustments(close, scale, lo * 2, hi * 2, 0.02)
    # each row replays only its own window's past: a right band stays near, a wrong one moves toward it
    assert abs(np.median(right[:, 0])) < 0.15
    assert np.median(too_narrow[:, 0]) > 0.3 and np.median(too_wide[:, 0]) < -0.3
    # and the outcome after the window (not replayed) is covered about 80 % of the time by the adapted band
    future = _walk(400, 321, 0.02, seed=5)
    adapted = band_adjustments(future[:, :-1], scale, lo / 2, hi / 2, 0.02)
    assert _replayed_coverage(future, lo / 2, hi / 2, np.zeros_like(adapted), 30) < 0.6
    assert 0.7 < _replayed_coverage(future, lo / 2, hi / 2, adapted, 30) < 0.9


def test_long_horizon_bands_carry_a_margin_for_a_new_regime() -> None:
    from training.band.quantiles import BAND_QUANTILES, REGIME_MARGIN, band_quantiles

    rng = np.random.default_rng(5)
    calm, wild = rng.normal(0, 0.8, size=(3000, 30)), rng.normal(0, 1.3, size=(3000, 30))
    pooled = np.concatenate([calm, wild])
    lo, hi = band_quantiles(pooled, [calm, wild])
    plain_lo, plain_hi = np.quantile(pooled, BAND_QUANTILES, axis=0)
    wild_lo, wild_hi = np.quantile(wild, BAND_QUANTILES, axis=0)
    assert lo[0] == plain_lo[0] and hi[0] == plain_hi[0]  # h = 1: validation's band as pooled
    # h = 30: REGIME_MARGIN of the way to the wider half's band; with the full margin, that band
    assert lo[-1] == pytest.approx(plain_lo[-1] + REGIME_MARGIN * (wild_lo[-1] - plain_lo[-1]))
    assert hi[-1] == pytest.approx(plain_hi[-1] + REGIME_MARGIN * (wild_hi[-1] - plain_hi[-1]))
    full_lo, full_hi = band_quantiles(pooled, [calm, wild], margin=1.0)
    assert full_lo[-1] == pytest.approx(wild_lo[-1]) and full_hi[-1] == pytest.approx(wild_hi[-1])
    assert 0 < REGIME_MARGIN < 1
    assert np.all(np.diff(hi - plain_hi) >= -0.05)  # the margin grows with the horizon (up to sampling noise)
    # halves too small to say anything: the pooled band
    same_lo, same_hi = band_quantiles(pooled, [calm[:10], wild])
    assert np.allclose(same_lo, plain_lo) and np.allclose(same_hi, plain_hi)


def test_validation_blocks_keep_coins_of_one_time_together() -> None:
    from training.calibration import VALIDATION_BLOCKS, validation_blocks

    times = np.tile(np.arange(100).astype("datetime64[D]"), 7)  # 7 coins, 100 days each, symbol by symbol
    blocks = validation_blocks(len(times), times)
    assert len(np.unique(blocks)) == VALIDATION_BLOCKS
    same_day = blocks.reshape(7, 100)
    assert (same_day == same_day[0]).all()  # every coin's origin of a day is in that day's block
    assert (np.diff(same_day[0]) >= 0).all()  # spans of time, in order
    np.testing.assert_array_equal(validation_blocks(25), np.arange(25) // 10)  # no times: runs of origins


def test_confidence_earned_by_a_few_market_moves_is_not_trusted() -> None:
    """Twenty coins that move together: validation holds 40 draws of the market, not 800. A model
    whose sign matched the market on a lucky 25 of those 40 days looks skilled when each origin
    counts as a draw; blocks of time see how little 40 days prove."""
    from training.calibration import confidence

    rng = np.random.default_rng(12)
    days, coins = 40, 20
    market = rng.normal(0.0, 1.0, days)
    right = rng.permutation(np.arange(days) < 25)
    lucky = np.where(right, np.sign(market), -np.sign(market))
    sigma = np.full(days * coins, 0.02)
    root = np.sqrt(np.arange(1, H + 1))[None, :]
    raw = (np.repeat(lucky, coins) * rng.uniform(0.2, 1.0, days * coins))[:, None] * 0.02 * root
    actual = (np.repeat(market, coins)[:, None] + 0.3 * rng.normal(size=(days * coins, H))) * 0.02 * root
    times = np.repeat(np.arange(days).astype("datetime64[D]"), coins)
    p = confidence(_fit(raw, actual, sigma, times), raw, sigma)
    hit = np.sign(raw) == np.sign(actual)
    assert hit.mean() > 0.58  # the lucky majority, as validation saw it
    assert p.mean() < 0.53, p.mean()  # the temperature's point estimate stated 0.59 here


def test_a_reliability_table_keeps_tied_confidence_in_one_bin_with_its_interval() -> None:
    from training.evaluation import reliability

    rng = np.random.default_rng(13)
    stated = np.concatenate([np.full(600, 0.5), np.linspace(0.55, 0.7, 400)])
    hit = rng.random(1000) < stated
    blocks = np.arange(1000) % 50
    table = reliability(stated, hit, blocks)
    assert table[0]["predicted"] == 0.5 and table[0]["n"] == 600  # one bin for the tie, not six
    assert sum(row["n"] for row in table) == 1000 and len(table) == 5
    for row in table:
        assert row["observed_low"] <= row["observed"] <= row["observed_high"]
    assert "observed_low" not in reliability(stated, hit)[0]  # no blocks, no interval


def test_reliability_counts_only_steps_that_call_a_direction_and_pools_periods_apart() -> None:
    from training.evaluation import CalledSteps

    direction = np.array([[1, 0, -1], [0, 0, 1]])
    confidence = np.array([[0.6, 0.5, 0.7], [0.5, 0.5, 0.55]])
    actual = np.array([[0.01, -0.02, 0.03], [0.0, 0.01, 0.02]])
    steps = CalledSteps.of(direction, confidence, actual, np.array([4, 9]))
    assert steps.confidence.tolist() == [0.6, 0.7, 0.55]  # the flat steps claim nothing
    assert steps.correct.tolist() == [True, False, True] and steps.blocks.tolist() == [4, 4, 9]
    both = CalledSteps.pooled([steps, steps.moved(100)])
    assert both.blocks.tolist() == [4, 4, 9, 104, 104, 109]
    assert sum(row["n"] for row in both.reliability()) == 6


def test_chance_within_says_how_often_a_perfect_band_meets_a_per_window_goal() -> None:
    from training.evaluation import chance_within

    # a window whose 95 % interval is +-0.0588 has a spread of 0.03: within +-0.03 with chance 0.683
    expected, every = chance_within([(0.8, 0.7412, 0.8588)] * 4, (0.77, 0.83), 0.80)
    assert abs(expected - 4 * 0.6827) < 0.01 and abs(every - 0.6827**4) < 0.01
    assert chance_within([(0.8, 0.8, 0.8)], (0.77, 0.83), 0.80) == (1.0, 1.0)  # no spread, no luck
    tight, _ = chance_within([(0.8, 0.79, 0.81)] * 4, (0.77, 0.83), 0.80)
    assert tight > 3.99  # a window that resolves the goal is met by a perfect band


def test_the_chosen_bands_coverage_on_every_test_candle_is_the_same_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.honesty as honesty
    from training.forecaster import ForecastModel, Windows

    class FixedBand(ForecastModel):
        """A band of +-4 % x sqrt(h) around the last close: its coverage is known from the closes."""

        def predict_windows(self, windows: Windows, steps: int = H, shift: np.ndarray | None = None) -> ForecastArrays:
            c0 = windows.close[:, -1]
            width = 0.04 * np.sqrt(np.arange(1, steps + 1))[None, :]
            zeros = np.zeros((len(c0), steps))
            return ForecastArrays(zeros, zeros, zeros, zeros, zeros, c0[:, None] * np.exp(-width),
                                  c0[:, None] * np.exp(width), zeros + 0.5, zeros, zeros, zeros,
                                  np.zeros(len(c0)), c0, pd.DataFrame(), c0[:, None] * np.exp(-width),
                                  c0[:, None] * np.exp(width), np.zeros((len(c0), steps, 7)))

    rng = np.random.default_rng(8)
    stamps = pd.date_range("2021-01-01", periods=520, freq="1D", tz="UTC")
    frames = {}
    for k in range(5):  # listed k x 40 days apart: the later ones have no full window at the start
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, 520 - 40 * k)))
        frames[f"X:C{k}USDT"] = pd.DataFrame({"timestamp": stamps[40 * k:], "open": close, "high": close * 1.01,
                                              "low": close * 0.99, "close": close, "volume": 1.0})
    model = FixedBand("1d", [])
    start, end = stamps[400], stamps[480]
    none = MarketReplay(frames)  # the model's band has no market-wide adaptation
    monkeypatch.setattr(honesty, "EVERY_CANDLE_BATCH", 10**9)
    whole = honesty.every_candle(model, frames, start, end, "1d", none)
    monkeypatch.setattr(honesty, "EVERY_CANDLE_BATCH", 100)  # one symbol a batch
    assert honesty.every_candle(model, frames, start, end, "1d", none) == whole
    covered = []  # every candle of [start, end) with 320 candles up to it and 30 after it
    for frame in frames.values():
        close = frame["close"].to_numpy()
        for i in np.flatnonzero(((frame["timestamp"] >= start) & (frame["timestamp"] < end)).to_numpy()):
            if i >= model.window - 1 and i + H < len(close):
                covered.append([abs(np.log(close[i + h] / close[i])) <= 0.04 * np.sqrt(h) for h in (1, H)])
    assert whole["origins"] == len(covered) < 5 * 80  # the late listings lose origins
    assert whole["coverage_80"]["1"][0] == pytest.approx(np.mean([c[0] for c in covered]))
    assert whole["coverage_80"][str(H)][0] == pytest.approx(np.mean([c[1] for c in covered]))


def test_a_stopped_honesty_run_resumes_and_pools_every_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench.honesty --resume reads the windows a stopped run finished (their outcomes beside the
    JSON) instead of fitting them again, and pools them with the rest as one run would."""
    import bench.honesty as honesty
    from training.evaluation import CalledSteps

    rng = np.random.default_rng(3)
    fitted: list[str] = []

    def fake_window(timeframe, plan, start, end, models):
        fitted.append(f"{start:%Y-%m-%d}")
        n = 200
        blocks = honesty.Blocks(np.arange(n) // 10, np.arange(n) // 30)
        steps = CalledSteps(rng.uniform(0.5, 0.7, n), rng.random(n) < 0.6, blocks.short)
        outcome = honesty.Outcomes({1: rng.random(n) < 0.8, H: rng.random(n) < 0.8}, blocks, steps,
                                   rng.uniform(1, 2, (n, 4)), rng.uniform(1, 2, (n, 4)))
        scores = {"mae_ratio": {}, "coverage_80": {"1": 0.8, str(H): 0.8}, "called": 1.0, "reliability": []}
        return {"timeframe": timeframe, "window": f"{start:%Y-%m-%d} to {end:%Y-%m-%d}",
                "models": {"auto (naive)": scores}}, {"auto": outcome}

    monkeypatch.setattr(honesty, "run_window", fake_window)
    monkeypatch.setattr(honesty, "print_window", lambda result: None)
    windows = honesty.PLANS["4h"].windows[:3]
    models = honesty.Models({"n_estimators": 3}, {}, None)
    whole_out = tmp_path / "whole.json"
    run, saved = honesty.Run.start(whole_out, models, resume=False)
    run.timeframe("4h", honesty.PLANS["4h"], windows, saved)
    whole = json.loads(whole_out.read_text())

    out = tmp_path / "stopped.json"
    rng = np.random.default_rng(3)  # the same outcomes again
    fitted.clear()
    run, saved = honesty.Run.start(out, models, resume=False)
    run.timeframe("4h", honesty.PLANS["4h"], windows[:2], saved)  # stopped after two windows
    run, saved = honesty.Run.start(out, models, resume=True)
    run.timeframe("4h", honesty.PLANS["4h"], windows, saved)
    assert fitted == ["2022-07-01", "2022-10-01", "2023-01-01"]  # no window fitted twice
    assert json.loads(out.read_text())["pooled"] == whole["pooled"]
    assert whole["pooled"]["4h"]["auto"]["windows"] == 3
    with pytest.raises(SystemExit, match="other models' parameters"):
        honesty.Run.start(out, honesty.Models({"n_estimators": 4}, {}, None), resume=True)


def test_any_export_and_any_windows_can_be_judged(tmp_path) -> None:
    from bench import honesty

    plan = honesty.plan_of("1d", f"csv:{tmp_path}", "2023-01-01:2023-07-01,2023-07-01:2024-01-01")
    assert plan.data == tmp_path and [f"{a:%Y-%m-%d}" for a, _ in plan.windows] == ["2023-01-01", "2023-07-01"]
    assert honesty.plan_of("4h", None, None).windows == honesty.PLANS["4h"].windows
    bad = [(("1d", "s3://x", None), "csv:DIR"), (("1d", f"csv:{tmp_path}/none", None), "no data folder"),
           (("1d", f"csv:{tmp_path}", "2023-07-01:2023-01-01"), "after the start"),
           (("1d", f"csv:{tmp_path}", "July"), "START:END")]
    for args, said in bad:
        with pytest.raises(SystemExit, match=said):
            honesty.plan_of(*args)
