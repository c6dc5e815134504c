"""Accuracy of served forecasts: predictions served as of a past moment on the synthetic market,
then scored once their candles close; aggregates against a hand computation; the endpoint with
naive beside the model. SQLite + in-process and PostgreSQL + Redis."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
from sqlmodel import select

from accuracy.tracker import track
from market_data.source import MarketDataUnavailable
from market_data.synthetic import SyntheticMarket
from storage.db import session_scope
from storage.lake import Lake
from storage.schema import ModelAccuracy, PredictionStep
from tests.conftest import START, client_for, register_and_login


class CountingSource:
    """The market as it is later (it knows candles after the forecasts), counting requests."""

    def __init__(self, market: SyntheticMarket, failing: set[str] | None = None) -> None:
        self.market, self.failing, self.requests = market, failing or set(), []

    def aggregates(self, ticker: str, timeframe: str, start: Any, end: Any) -> pd.DataFrame:
        self.requests.append((ticker, timeframe))
        if ticker in self.failing:
            raise MarketDataUnavailable("loopback outage")
        return self.market.aggregates(ticker, timeframe, start, end)


def _steps(world, prediction_id: str) -> list[PredictionStep]:
    with session_scope(world["engine"]) as s:
        return s.exec(select(PredictionStep).where(PredictionStep.prediction_id == uuid.UUID(prediction_id))
                      .order_by(PredictionStep.step_number)).all()


def _interval_score(lower: float, upper: float, actual: float) -> float:
    """Gneiting and Raftery's, written out by hand: width + 2 / 0.2 x the miss."""
    return (upper - lower) + 10.0 * (max(lower - actual, 0.0) + max(actual - upper, 0.0))


def test_served_forecasts_are_scored_once_their_candles_close(world, tmp_path) -> None:
    client = client_for(world, QUOTA_ANONYMOUS="100")
    tickers = world["tickers"][:3]
    served = {t: client.post("/ml/predict", json={"symbol": t, "timeframe": "1d"}).json() for t in tickers}
    token = register_and_login(client, "acc@example.com")  # a user's copy is the same forecast, counted once
    copy = client.post("/api/predictions/generate", json={"symbol": tickers[0], "timeframe": "1d"},
                       headers={"Authorization": f"Bearer {token}"}).json()
    assert copy["prediction_id"] != served[tickers[0]]["prediction_id"]
    later = SyntheticMarket(seed=7, n_coins=4, now=(START + timedelta(days=20)).replace(tzinfo=None))
    # one coin's candles are already in the lake: no request for it
    lake = Lake(tmp_path / "lake")
    lake.write(tickers[1], "1d", later.aggregates(tickers[1], "1d", START - timedelta(days=3), START + timedelta(days=8)))
    source = CountingSource(later, failing={tickers[2]})
    as_of = START + timedelta(days=5)  # 2026-03-15 22:00: the candles of 03-10 .. 03-14 have closed
    report = track(world["engine"], source, lake, as_of)
    assert source.requests == [(tickers[0], "1d"), (tickers[2], "1d")]  # one per symbol and timeframe at most
    assert report.filled == 5 * 3 and report.unavailable == 5 and report.still_open == 25 * 4
    truth = later.aggregates(tickers[0], "1d", START - timedelta(days=2), as_of).set_index("timestamp")["close"]
    for pid in (served[tickers[0]]["prediction_id"], copy["prediction_id"]):
        steps = _steps(world, pid)
        origin = steps[0].open
        for step in steps[:5]:
            actual = truth[pd.Timestamp(step.timestamp, tz="UTC")]
            assert step.actual_close == pytest.approx(actual, rel=1e-12)
            assert step.is_accurate is bool(actual > origin)  # the flat test forecast says "up"
        assert all(s.actual_close is None and s.is_accurate is None for s in steps[5:])  # still open
    assert all(s.actual_close is None for s in _steps(world, served[tickers[2]]["prediction_id"]))

    # a re-run changes nothing
    with session_scope(world["engine"]) as s:
        before = sorted((r.horizon, r.date, r.n, r.mae) for r in s.exec(select(ModelAccuracy)).all())
    again = track(world["engine"], source, lake, as_of)
    assert again.filled == 0 and again.aggregated_rows == 0
    with session_scope(world["engine"]) as s:
        assert sorted((r.horizon, r.date, r.n, r.mae) for r in s.exec(select(ModelAccuracy)).all()) == before

    # the aggregate equals a hand computation: horizon h closes on day 03-10 + h, two coins each
    hand = {}
    for t in tickers[:2]:
        steps = _steps(world, served[t]["prediction_id"])
        for step in steps[:5]:
            a, o = step.actual_close, steps[0].open
            y = math.log(a / o)
            band = [math.log(v / o) for v in (step.lower, step.upper, step.naive_lower, step.naive_upper)]
            hand.setdefault(step.step_number, []).append(
                (abs(math.log(step.close / a)), abs(math.log(o / a)), bool(a > o), bool(step.lower <= a <= step.upper),
                 _interval_score(band[0], band[1], y), _interval_score(band[2], band[3], y)))
    with session_scope(world["engine"]) as s:
        rows = {r.horizon: r for r in s.exec(select(ModelAccuracy)).all()}
    assert sorted(rows) == [1, 2, 3, 4, 5]
    for h, values in hand.items():
        row = rows[h]
        assert row.n == 2 and row.date == (START + timedelta(days=h)).date()
        assert row.mae == pytest.approx(sum(v[0] for v in values) / 2)
        assert row.naive_mae == pytest.approx(sum(v[1] for v in values) / 2)
        assert row.directional_accuracy == pytest.approx(sum(v[2] for v in values) / 2)
        assert row.coverage_80 == pytest.approx(sum(v[3] for v in values) / 2)
        assert row.mean_confidence == pytest.approx(0.5)
        assert row.interval_score == pytest.approx(sum(v[4] for v in values) / 2)
        assert row.naive_interval_score == pytest.approx(sum(v[5] for v in values) / 2)

    # the API: per horizon with naive beside, pooled, and the reliability table
    answer = client.get("/api/models/1d/accuracy", params={"days": 30}).json()
    assert answer["model_version"] == "v-test" and [h["horizon"] for h in answer["horizons"]] == [1, 2, 3, 4, 5]
    first = answer["horizons"][0]
    assert first["n"] == 2 and first["naive_mae"] == pytest.approx(rows[1].naive_mae)
    assert first["mae_ratio"] == pytest.approx(rows[1].mae / rows[1].naive_mae)
    assert first["interval_score_ratio"] == pytest.approx(rows[1].interval_score / rows[1].naive_interval_score)
    assert first["pinball_10"] > 0 and first["pinball_90"] > 0 and first["crps"] > 0  # and the PIT's ten shares:
    assert sum(first["pit_histogram"]) == pytest.approx(1.0) and len(first["pit_histogram"]) == 10
    assert answer["overall"]["n"] == 10
    hits = [v[2] for values in hand.values() for v in values]
    (row,) = answer["reliability"]  # one bin: every step stated 0.5, and a tie is never split
    assert (row["low"], row["high"], row["n"], row["mean_confidence"]) == (0.5, 0.5, 10, 0.5)
    assert row["hit_rate_low"] <= row["hit_rate"] <= row["hit_rate_high"] and row["hit_rate"] == pytest.approx(sum(hits) / 10)
    for bad in ({"days": 0}, {"days": 400}):
        assert client.get("/api/models/1d/accuracy", params=bad).status_code == 400
    assert client.get("/api/models/2h/accuracy").status_code == 422
    r = client.get("/api/models/1h/accuracy")
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_model"


def test_a_timeframe_with_nothing_served_answers_empty(world) -> None:
    answer = client_for(world).get("/api/models/1d/accuracy").json()
    assert answer["horizons"] == [] and answer["overall"] is None and answer["reliability"] == []


def test_alarms_name_a_band_off_its_range_and_a_model_worse_than_naive() -> None:
    from accuracy.tracker import LiveSummary

    ok = LiveSummary("1d", "v1", 100, 0.020, 0.021, 0.952, 0.55, 0.81)
    assert ok.alarms() == []
    wide = LiveSummary("1d", "v1", 100, 0.020, 0.021, 0.952, 0.55, 0.95)
    worse = LiveSummary("1h", "v2", 100, 0.022, 0.021, 1.048, 0.49, 0.64)
    assert wide.alarms() == ["live 80 % band coverage 0.950 is outside 0.70-0.90"]
    assert len(worse.alarms()) == 2 and "worse than naive" in worse.alarms()[1]


def test_the_job_scores_and_prints_live_figures(world, monkeypatch, capsys, caplog) -> None:
    from jobs import track_accuracy

    client = client_for(world, QUOTA_ANONYMOUS="100")
    client.post("/ml/predict", json={"symbol": world["tickers"][0], "timeframe": "1d"})
    later = SyntheticMarket(seed=7, n_coins=4, now=(START + timedelta(days=20)).replace(tzinfo=None))
    monkeypatch.setattr("jobs.track_accuracy.make_source", lambda settings: later)
    for key, value in {"DATABASE_URL": world["url"], "DATA_DIR": str(world["tmp"] / "data"),
                       "MODEL_DIR": str(world["tmp"] / "models")}.items():
        monkeypatch.setenv(key, value)
    as_of = (START + timedelta(days=3)).isoformat()
    track_accuracy.main(["--as-of", as_of, "--days", "7"])
    out = capsys.readouterr().out
    assert "[accuracy] 3 steps scored" in out and "1 market-data requests" in out
    assert "1d v-test last 7 days: 3 steps" in out
    track_accuracy.main(["--as-of", as_of])
    assert "[accuracy] 0 steps scored" in capsys.readouterr().out
