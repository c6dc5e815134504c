"""The forecast's distribution and the probabilities read from it: quantiles in order that never
narrow with the step and whose 10/90 % ones are the band; probabilities that behave as
probabilities (in [0, 1], falling as the level rises, a touch at least a close beyond, certain at
the price); the touch of a random walk as the reflection principle says; a plan's three chances
summing to 1; PIT flat for a calibrated distribution and U-shaped for a too-narrow one; and the
HTTP question with its refusals."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from risk.distribution import Z_LEVELS, cdf, gaussian_levels, value_at
from risk.events import Outlook
from stats.coverage import chi2_sf
from tests.conftest import bearer, client_for, register_and_login
from training.band.band import Band
from training.band.quantiles import BAND_ROWS, LEVELS
from training.band.scale import BandScale
from training.scores import crps, pit, pit_histogram

H = 30


def _random_walk(sigma: float = 0.03, last: float = 100.0) -> Outlook:
    """The distribution of a driftless random walk in log price with volatility `sigma` a step."""
    table = last * np.exp(sigma * np.sqrt(np.arange(1, H + 1))[:, None] * Z_LEVELS[None, :])
    return Outlook(last, table)


def _fitted_band(rng: np.random.Generator) -> Band:
    """A band fitted on skewed, fat-tailed moves of two regimes (as validation's halves are)."""
    halves = [rng.standard_t(4, (400, H)) * s + 0.2 for s in (0.8, 1.3)]
    model = [np.where(rng.random((400, H)) < 0.5, part * 0.9, np.nan) for part in halves]
    return Band.fit(BandScale.from_dict(None, 20), halves, model)


def test_the_served_distribution_is_in_order_never_narrows_and_holds_the_band() -> None:
    rng = np.random.default_rng(3)
    band = _fitted_band(rng)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (50, 60)), axis=1))
    centre = np.where(rng.random((50, H)) < 0.5, rng.normal(0, 0.01, (50, H)), 0.0)
    shift = rng.normal(0, 0.2, (50, H))
    served = band.served(centre, closes, shift)
    q = served.quantiles
    assert q.shape == (50, H, len(LEVELS))
    assert (np.diff(q, axis=2) >= -1e-12).all()  # in order of level
    assert np.allclose(q[..., BAND_ROWS[0]], served.lower) and np.allclose(q[..., BAND_ROWS[1]], served.upper)
    for inner in range(len(LEVELS) // 2):  # every central interval is at least as wide as the step before's
        width = q[..., len(LEVELS) - 1 - inner] - q[..., inner]
        assert (np.diff(width, axis=1) >= -1e-12).all(), LEVELS[inner]
    assert band.table().shape == (len(LEVELS), H)
    again = Band.from_dict(band.as_dict(), 20)
    assert again == band


def test_a_band_fitted_before_bands_had_a_distribution_reads_as_the_normal_through_its_ends() -> None:
    band = _fitted_band(np.random.default_rng(4))
    old = band.as_dict()
    del old["levels"], old["naive_levels"]
    legacy = Band.from_dict(old, 20)
    table = legacy.table()
    assert np.allclose(table[list(BAND_ROWS)], [legacy.lo, legacy.hi])
    assert np.allclose(table, gaussian_levels(np.asarray(legacy.lo), np.asarray(legacy.hi)).T)


def test_quantiles_read_as_a_whole_distribution() -> None:
    normal = 0.5 + 2.0 * Z_LEVELS  # quantiles on a normal give that normal exactly
    x = np.linspace(-8, 8, 41)
    exact = np.array([NormalDist(0.5, 2.0).cdf(v) for v in x])
    assert np.allclose(cdf(np.tile(normal, (len(x), 1)), x), exact, atol=1e-9)
    assert np.allclose(value_at(normal, np.array([-3.0, 0.0, 2.5])), [-5.5, 0.5, 5.5])
    skewed = np.array([-3.0, -2.0, -0.5, 0.0, 1.0, 3.0, 5.0])
    assert np.allclose(cdf(np.tile(skewed, (7, 1)), skewed), LEVELS)  # through every quantile
    assert cdf(skewed[None], np.array([9.0]))[0] > 0.95 and cdf(skewed[None], np.array([-9.0]))[0] < 0.05
    point = np.zeros(7)  # a candle that cannot move
    assert list(cdf(np.tile(point, (3, 1)), np.array([-1e-9, 0.0, 1e-9]))) == pytest.approx([0.0, 0.5, 1.0])


def test_probabilities_behave_as_probabilities() -> None:
    walk = _random_walk()
    levels = [80.0, 95.0, 99.0, 100.5, 103.0, 110.0, 130.0]
    for h in (1, 10, 30):
        above = [walk.p_above(x, h) for x in levels]
        touch = [walk.p_touch(x, h) for x in levels]
        assert all(0.0 <= p <= 1.0 for p in above + touch)
        assert all(a >= b for a, b in zip(above, above[1:]))  # falling as the level rises
        ups = [x for x in levels if x > 100]
        assert all(walk.p_touch(x, h) >= walk.p_above(x, h) for x in ups)
        assert all(a >= b for a, b in zip(touch[3:], touch[4:]))  # further above: less likely to be reached
    assert walk.p_touch(100.0, 1) == 1.0
    assert walk.p_touch(100.0001, 1) > 0.99
    with pytest.raises(ValueError):
        walk.p_above(-1.0, 3)
    with pytest.raises(ValueError):
        walk.p_touch(101.0, 31)


def test_a_random_walks_touch_is_what_the_reflection_principle_says() -> None:
    """P(max of a driftless Brownian motion over T reaches a) = 2 (1 - Phi(a / (sigma sqrt T)))."""
    sigma, walk = 0.03, _random_walk(0.03)
    for level, h in [(105.0, 10), (110.0, 30), (95.0, 5), (101.0, 1), (120.0, 30), (85.0, 20)]:
        a = abs(np.log(level / 100.0))
        expected = 2 * (1 - NormalDist().cdf(a / (sigma * np.sqrt(h))))
        assert abs(walk.p_touch(level, h) - expected) < 0.02, (level, h, walk.p_touch(level, h), expected)


def test_a_plans_three_chances_sum_to_one_and_the_nearer_level_comes_first_more_often() -> None:
    walk = _random_walk(0.02)
    target, stop, neither = walk.first_of(110.0, 90.0)
    assert abs(target + stop + neither - 1.0) < 1e-9 and min(target, stop, neither) >= 0
    near_target = walk.first_of(103.0, 85.0)
    assert near_target[0] > 0.7 > near_target[1]
    assert walk.first_of(103.0, 85.0, within=1)[2] > near_target[2]  # less time: more often neither
    assert abs(sum(walk.first_of(300.0, 20.0)) - 1.0) < 1e-9 and walk.first_of(300.0, 20.0)[2] > 0.99


def test_pit_is_flat_for_a_calibrated_distribution_and_u_shaped_for_a_too_narrow_one() -> None:
    rng = np.random.default_rng(11)
    sigma = rng.uniform(0.01, 0.05, 20_000)
    outcome = rng.normal(0, 1, 20_000) * sigma
    calibrated = sigma[:, None] * Z_LEVELS[None, :]
    narrow = 0.6 * calibrated

    def chi2_p(values: np.ndarray) -> float:
        share = pit_histogram(values)
        expected = len(values) / 10
        return chi2_sf(float((((share * len(values)) - expected) ** 2 / expected).sum()), 9)

    assert chi2_p(pit(calibrated, outcome)) > 0.01
    too_narrow = pit_histogram(pit(narrow, outcome))
    assert chi2_p(pit(narrow, outcome)) < 1e-6
    assert too_narrow[0] > 0.15 and too_narrow[-1] > 0.15 and too_narrow[4:6].max() < 0.1  # U-shaped
    assert crps(calibrated, outcome).mean() < crps(narrow, outcome).mean()
    point = np.zeros((1, 7))  # CRPS of a point forecast is the absolute error
    assert np.isclose(crps(point, np.array([0.3]))[0], 0.3, rtol=0.01)


def test_a_forecasts_distribution_and_probabilities_over_http(world) -> None:
    client = client_for(world)
    ticker = world["tickers"][0]
    r = client.post("/api/predictions/generate", json={"symbol": ticker, "timeframe": "1d", "num_steps": 10})
    assert r.status_code == 200, r.text
    answer = r.json()
    step = answer["steps"][4]
    assert list(step["quantiles"]) == ["0.05", "0.1", "0.25", "0.5", "0.75", "0.9", "0.95"]
    assert step["quantiles"]["0.1"] == step["lower"] and step["quantiles"]["0.9"] == step["upper"]
    pid, last = answer["prediction_id"], answer["steps"][0]["open"]
    stored = client.get(f"/api/predictions/{pid}").json()
    assert stored["steps"][4]["quantiles"] == step["quantiles"]
    url = f"/api/predictions/{pid}/probability"
    above = client.get(url, params={"above": last * 1.02, "step": 5})
    assert above.status_code == 200, above.text
    assert 0 < above.json()["p_above"] < 0.5 and above.json()["step"] == 5
    touch = client.get(url, params={"touch": last * 1.02, "within": 5}).json()
    assert touch["p_touch"] >= above.json()["p_above"]
    assert client.get(url, params={"touch": last, "within": 1}).json()["p_touch"] == 1.0
    assert client.get(url, params={"touch": last * 1.02, "within": 5}).json() == touch  # cached with the forecast
    for params, status in [({"above": -1, "step": 2}, 422), ({"above": 0, "step": 2}, 422),
                           ({"above": last, "step": 31}, 422), ({"above": last, "step": 0}, 422),
                           ({"above": last}, 400), ({}, 400), ({"above": last, "step": 2, "touch": last}, 400),
                           ({"touch": last, "within": 31}, 422), ({"above": "much", "step": 2}, 422)]:
        bad = client.get(url, params=params)
        assert bad.status_code == status, (params, bad.text)
        assert bad.json()["error"]["code"] and bad.json()["error"]["message"], bad.text
    assert client.get("/api/predictions/not-an-id/probability", params={"above": 1, "step": 1}).status_code == 400
    unknown = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/api/predictions/{unknown}/probability", params={"above": 1, "step": 1}).status_code == 404
    # a user's own forecast is theirs: someone else's probability question is a 404
    token, other = register_and_login(client, "risk@example.com"), register_and_login(client, "other@example.com")
    own = client.post("/api/predictions/generate", json={"symbol": ticker, "timeframe": "1d", "num_steps": 10},
                      headers=bearer(token)).json()["prediction_id"]
    params = {"above": last, "step": 3}
    assert client.get(f"/api/predictions/{own}/probability", params=params, headers=bearer(token)).status_code == 200
    assert client.get(f"/api/predictions/{own}/probability", params=params, headers=bearer(other)).status_code == 404
    assert client.get(f"/api/predictions/{own}/probability", params=params).status_code == 404


def test_plans_and_alerts_answer_their_chances_from_the_coins_newest_forecast(world) -> None:
    client = client_for(world)
    ticker = world["tickers"][1]
    token = register_and_login(client, "plans@example.com")
    auth = bearer(token)
    plan = {"symbol": ticker, "title": "swing", "entry_price": 1.0, "target_price": 1.2, "stop_loss": 0.9}
    before = client.post("/api/trading-plans", json=plan, headers=auth)
    assert before.status_code == 201, before.text
    assert before.json()["timeframe"] == "1d" and before.json()["p_target_first"] is None  # no forecast yet
    answer = client.post("/api/predictions/generate", json={"symbol": ticker, "timeframe": "1d"}).json()
    last = answer["steps"][0]["open"]
    plan.update(entry_price=last, target_price=last * 1.03, stop_loss=last * 0.96)
    made = client.post("/api/trading-plans", json=plan, headers=auth).json()
    chances = (made["p_target_first"], made["p_stop_first"], made["p_neither"])
    assert made["forecast_id"] == answer["prediction_id"] and abs(sum(chances) - 1.0) < 1e-3
    assert made["p_target_first"] > made["p_stop_first"]  # the flat forecast's band (+-5 %): the nearer level first
    assert made["target_band_widths"] > 0 > made["stop_band_widths"]
    assert client.get(f"/api/trading-plans/{made['id']}", headers=auth).json()["p_neither"] == made["p_neither"]
    hourly = client.patch(f"/api/trading-plans/{made['id']}", json={"timeframe": "1h"}, headers=auth).json()
    assert hourly["timeframe"] == "1h" and hourly["p_target_first"] is None and hourly["forecast_id"] is None
    assert client.patch(f"/api/trading-plans/{made['id']}", json={"timeframe": None}, headers=auth).status_code == 422
    assert client.patch(f"/api/trading-plans/{made['id']}", json={"timeframe": "2h"}, headers=auth).status_code == 422
    far = client.post("/api/alerts", json={"symbol": ticker, "condition_type": "above", "target_price": last * 1.04},
                      headers=auth).json()
    near = client.post("/api/alerts", json={"symbol": ticker, "condition_type": "above", "target_price": last * 1.01},
                       headers=auth).json()
    holds = client.post("/api/alerts", json={"symbol": ticker, "condition_type": "below", "target_price": last * 1.1},
                        headers=auth).json()
    assert 0 < far["p_trigger"] < near["p_trigger"] < 1 and holds["p_trigger"] == 1.0
    assert far["forecast_id"] == answer["prediction_id"]
