"""Bad input, table-driven: every case a 4xx (or a documented 503) in the `{"error": {code,
message}}` shape, never a 500, with nothing internal in the message, on SQLite + in-process and
PostgreSQL + Redis. Then what the service says when its own dependencies fail: no tracebacks,
no exception text, no secrets."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from accounts.service import AccountService
from config import load_settings
from market_data.source import MarketDataUnavailable
from predictions.market import MarketView
from predictions.service import PredictionService
from serve_app.active_models import NoActiveModel
from serve_app.app import create_app
from storage.registry import ModelRegistry
from tests.conftest import START, client_for, flat_forecast, make_world

LEAKS = ("Traceback", "File \"", "pid=", "ray::", "\x1b[", "psycopg", "sqlalchemy", "postgresql://", "redis://")


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# (name, method, path, request kwargs, expected status, expected code or None)
CASES: list[tuple[str, str, str, dict[str, Any], int, str | None]] = [
    ("unknown route", "get", "/api/nothing", {}, 404, "not_found"),
    ("unknown route, POST", "post", "/api/predictions/generate/extra", {"json": {}}, 404, "not_found"),
    ("wrong method", "get", "/ml/predict", {}, 405, "method_not_allowed"),
    ("wrong method, DELETE", "delete", "/api/symbols/search", {}, 405, "method_not_allowed"),
    ("HEAD on a POST route", "head", "/ml/predict", {}, 405, None),
    ("OPTIONS", "options", "/api/predictions/generate", {}, 405, "method_not_allowed"),
    ("body not UTF-8", "post", "/api/predictions/generate",
     {"content": b"\xff\xfe\xfa", "headers": {"content-type": "application/json"}}, 400, None),
    ("100k-deep nested array (over 64 kB)", "post", "/api/predictions/generate",
     {"content": _deep(100_000), "headers": {"content-type": "application/json"}}, 413, "body_too_large"),
    ("30k-deep nested array (under 64 kB)", "post", "/api/predictions/generate",
     {"content": _deep(30_000), "headers": {"content-type": "application/json"}}, 400, None),
    ("body over 64 kB", "post", "/api/predictions/generate",
     {"content": b'{"symbol": "' + b"A" * 70_000 + b'"}', "headers": {"content-type": "application/json"}}, 413,
     "body_too_large"),
    ("body over 64 kB, streamed", "post", "/api/auth/register",
     {"content": lambda: iter([b"x" * 40_000, b"y" * 40_000]), "headers": {"content-type": "application/json"}}, 413,
     "body_too_large"),
    ("Content-Length not a number", "post", "/api/auth/login",
     {"content": b"{}", "headers": {"content-type": "application/json", "content-length": "ten"}}, 400, None),
    ("malformed JSON", "post", "/api/predictions/generate",
     {"content": b'{"symbol": ', "headers": {"content-type": "application/json"}}, 400, "malformed_json"),
    ("JSON array body", "post", "/api/predictions/generate", {"json": [1, 2]}, 422, "invalid_request"),
    ("JSON null body", "post", "/api/predictions/generate", {"content": b"null",
                                                            "headers": {"content-type": "application/json"}}, 422, None),
    ("empty body", "post", "/api/predictions/generate", {"content": b"",
                                                        "headers": {"content-type": "application/json"}}, 422, None),
    ("NUL in the symbol", "post", "/api/predictions/generate",
     {"json": {"symbol": "X:BTC\u0000USDT", "timeframe": "1d"}}, 422, "invalid_request"),
    ("NUL in the search", "get", "/api/symbols/search?q=a%00b", {}, 422, "invalid_request"),
    ("control byte in the search", "get", "/api/symbols/search?q=a%1Bb", {}, 422, "invalid_request"),
    ("HTML in the symbol", "post", "/api/predictions/generate",
     {"json": {"symbol": "<script>alert(1)</script>", "timeframe": "1d"}}, 422, "invalid_request"),
    ("spaces in the symbol", "post", "/api/predictions/generate",
     {"json": {"symbol": "X: BTC", "timeframe": "1d"}}, 422, "invalid_request"),
    ("symbol too long", "post", "/api/predictions/generate", {"json": {"symbol": "X:" + "A" * 40, "timeframe": "1d"}},
     422, "invalid_request"),
    ("symbol a number", "post", "/api/predictions/generate", {"json": {"symbol": 5, "timeframe": "1d"}}, 422, None),
    ("unknown symbol", "post", "/api/predictions/generate", {"json": {"symbol": "X:NOSUCHUSD", "timeframe": "1d"}},
     404, "unknown_symbol"),
    ("bad timeframe", "post", "/api/predictions/generate", {"json": {"symbol": "X:BTCUSD", "timeframe": "2h"}},
     422, "invalid_request"),
    ("31 steps", "post", "/ml/predict", {"json": {"symbol": "X:BTCUSD", "timeframe": "1d", "num_steps": 31}}, 422,
     "invalid_request"),
    ("0 steps", "post", "/ml/predict", {"json": {"symbol": "X:BTCUSD", "timeframe": "1d", "num_steps": 0}}, 422,
     "invalid_request"),
    ("steps a string", "post", "/ml/predict", {"json": {"symbol": "X:BTCUSD", "timeframe": "1d", "num_steps": "x"}},
     422, "invalid_request"),
    ("predict_until not a date", "post", "/ml/predict",
     {"json": {"symbol": "X:BTCUSD", "timeframe": "1d", "predict_until": "soon"}}, 422, "invalid_request"),
    ("unknown field", "post", "/ml/predict", {"json": {"symbol": "X:BTCUSD", "timeframe": "1d", "colour": 1}}, 422,
     "invalid_request"),
    ("prediction id not a UUID", "get", "/api/predictions/not-a-uuid", {}, 400, "bad_prediction_id"),
    ("prediction id with NUL", "get", "/api/predictions/ab%00cd", {}, 400, "bad_prediction_id"),
    ("unknown prediction", "get", "/api/predictions/00000000-0000-4000-8000-000000000000", {}, 404,
     "unknown_prediction"),
    ("search without q", "get", "/api/symbols/search", {}, 422, "invalid_request"),
    ("search q blank", "get", "/api/symbols/search?q=%20%20", {}, 400, "bad_query"),
    ("search q too long", "get", "/api/symbols/search?q=" + "a" * 51, {}, 422, "invalid_request"),
    ("search limit 0", "get", "/api/symbols/search?q=a&limit=0", {}, 400, "bad_limit"),
    ("search limit 101", "get", "/api/symbols/search?q=a&limit=101", {}, 400, "bad_limit"),
    ("search limit not a number", "get", "/api/symbols/search?q=a&limit=ten", {}, 422, "invalid_request"),
    ("register without email", "post", "/api/auth/register", {"json": {"password": "long enough pw"}}, 422, None),
    ("register with a 320-char email", "post", "/api/auth/register",
     {"json": {"email": "a" * 310 + "@example.com", "password": "long enough pw"}}, 422, None),
    ("login without password", "post", "/api/auth/login", {"json": {"email": "a@example.com"}}, 422, None),
    ("login unknown account", "post", "/api/auth/login", {"json": {"email": "a@example.com", "password": "whatever1"}},
     401, "invalid_credentials"),
    ("me with a 10 kB cookie", "get", "/api/me", {"headers": {"Cookie": "session=" + "c" * 10_240}}, 401, None),
    ("checkout with billing off", "post", "/api/billing/checkout", {"json": {"tier": "pro"}}, 503,
     "billing_disabled"),
    # dependencies (billing on, signed in) are checked before the body: with billing off, that is the answer
    ("checkout unknown tier", "post", "/api/billing/checkout", {"json": {"tier": "gold"}}, 503, "billing_disabled"),
    ("portal not signed in", "post", "/api/billing/portal", {}, 503, "billing_disabled"),
    ("candles of an unknown symbol", "get", "/api/candles?symbol=X:NOSUCHUSD", {}, 404, "unknown_symbol"),
    ("candles with a NUL in the symbol", "get", "/api/candles?symbol=X:A%00B", {}, 422, "invalid_request"),
    ("candles limit 0", "get", "/api/candles?symbol=X:BTCUSD&limit=0", {}, 400, None),
    ("candles limit 501", "get", "/api/candles?symbol=X:BTCUSD&limit=501", {}, 400, None),
    ("candles bad timeframe", "get", "/api/candles?symbol=X:BTCUSD&timeframe=5m", {}, 422, "invalid_request"),
    ("accuracy days 0", "get", "/api/models/1d/accuracy?days=0", {}, 400, "bad_days"),
    ("webhook with billing off", "post", "/api/webhooks/stripe", {"content": b"{}"}, 503, "billing_disabled"),
]


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory) -> TestClient:
    """One app on PostgreSQL and Redis (where NUL bytes once gave 500s) for the whole table: bad
    input writes nothing, so the cases cannot disturb each other."""
    import psycopg

    from storage.cache import RedisCache
    from tests.conftest import PG_ADMIN_DSN, PG_URL_TEMPLATE, TEST_REDIS_URL

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    cache = RedisCache(TEST_REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:")
    made = make_world(PG_URL_TEMPLATE.format(db=name), cache, tmp_path_factory.mktemp("bad_input"))
    yield client_for(made)
    made["engine"].dispose()
    cache.delete_prefix()
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_4xx_in_the_error_shape(shared_client, case) -> None:
    name, method, path, kwargs, status, code = case
    client = shared_client
    if callable(kwargs.get("content")):  # a fresh stream for each run
        kwargs = {**kwargs, "content": kwargs["content"]()}
    r = client.request(method.upper(), path, **kwargs)
    assert r.status_code == status, (name, r.status_code, r.text[:300])
    if method == "head":
        return  # a HEAD answer has no body
    error = r.json()["error"]
    assert error["message"] and (code is None or error["code"] == code), (name, error)
    assert not any(leak in r.text for leak in LEAKS), (name, r.text)
    if status == 405:
        assert r.headers["Allow"]


def test_the_bad_input_table_is_large_enough() -> None:
    assert len(CASES) >= 40


class _DownSource:
    """A market source whose every request fails the way a real outage does."""

    def aggregates(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        raise MarketDataUnavailable("HTTPSConnectionPool(host='api.massive.com', port=443): Max retries exceeded "
                                    "with url: /v2/aggs?apiKey=sk_live_SECRET (Caused by NewConnectionError)")


def _app(world: dict[str, Any], source: Any = None, forecast: Any = None, cache: Any = None) -> TestClient:
    settings = load_settings({"DATABASE_URL": world["url"], "QUOTA_ANONYMOUS": "100"})
    engine, clock = world["engine"], world["clock"]
    cache = cache or world["cache"]
    market = MarketView(engine, cache, source or world["market"], lambda tf: 20, clock)
    predictions = PredictionService(engine, cache, market, ModelRegistry(engine, world["tmp"] / "models"),
                                    forecast or flat_forecast(world["model_id"]))
    return TestClient(create_app(predictions, AccountService(engine, world["cache"], settings.accounts, clock=clock)))


def test_dependency_failures_say_what_is_wrong_without_internals(world) -> None:
    body = {"symbol": world["tickers"][0], "timeframe": "1d"}

    def no_model(*_: Any) -> dict:
        raise NoActiveModel("no active 1d model yet; run jobs.weekly_training --timeframes 1d")

    r = _app(world, forecast=no_model).post("/ml/predict", json=body)
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_model"
    from storage.cache import MemoryCache

    r = _app(world, source=_DownSource(), cache=MemoryCache()).post("/ml/predict", json=body)
    assert r.status_code == 503 and r.json()["error"]["code"] == "market_data_unavailable"
    assert "SECRET" not in r.text and "HTTPSConnectionPool" not in r.text

    class BrokenCache:
        def get(self, key: str) -> None:
            raise ConnectionError("Error 111 connecting to redis://:hunter2@10.0.0.5:6379. Connection refused.")

        set = delete = ttl = get

    health = _app(world, cache=BrokenCache()).get("/api/health")
    assert health.status_code == 200 and health.json()["cache"] == "unavailable"
    assert health.json()["status"] == "degraded" and "hunter2" not in health.text
    for r in (health,):
        assert not any(leak in r.text for leak in LEAKS)


def test_predict_until_inside_the_30th_candle_is_30_steps(world) -> None:
    client = _app(world)
    first = client.post("/ml/predict", json={"symbol": world["tickers"][0], "timeframe": "1d"}).json()
    last_open = pd.Timestamp(first["steps"][-1]["timestamp"])
    inside = (last_open + timedelta(hours=12)).isoformat()
    r = client.post("/api/predictions/generate", json={"symbol": world["tickers"][0], "timeframe": "1d",
                                                        "predict_until": inside})
    assert r.status_code == 200 and len(r.json()["steps"]) == 30, r.text
    beyond = (last_open + timedelta(days=1)).isoformat()
    r = client.post("/api/predictions/generate", json={"symbol": world["tickers"][0], "timeframe": "1d",
                                                        "predict_until": beyond})
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_steps"


def test_an_export_that_ended_long_ago_is_named_and_not_cached_for_an_hour(world) -> None:
    from market_data.synthetic import SyntheticMarket

    # a market whose data stop 695 days before the service's clock (a CSV export, say)
    ended = (START - timedelta(days=695)).replace(tzinfo=None)
    old = SyntheticMarket(seed=7, n_coins=4, now=ended)
    ticker = next(t for t in world["tickers"] if len(old.aggregates(t, "1d", ended - timedelta(days=30), ended)))
    client = _app(world, source=old)
    r = client.post("/ml/predict", json={"symbol": ticker, "timeframe": "1d"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "stale_market_data", r.text
    message = r.json()["error"]["message"]
    last = old.aggregates(ticker, "1d", ended - timedelta(days=30), ended)["timestamp"].iloc[-1]
    assert f"latest 1d candle of {ticker} is {last.date().isoformat()}, 695 days ago" in message, message
    from storage.cache import fresh_candles_key

    ttl = world["cache"].ttl(fresh_candles_key(ticker, "1d"))
    assert ttl is not None and ttl <= 60


def test_json_is_the_only_body_format(world) -> None:
    r = client_for(world).post("/api/predictions/generate", content=json.dumps({"symbol": "X:A", "timeframe": "1d"}),
                            headers={"content-type": "text/plain"})
    assert r.status_code in (400, 415, 422) and r.json()["error"]["code"]


def test_metrics_tag_the_route_template_and_never_fail_a_request(shared_client) -> None:
    """Found by Schemathesis: a path with non-ASCII characters made Ray's metric tags raise (a 500),
    and raw paths as tags would grow without bound. Tags are route templates; a failing metric
    is ignored."""
    seen: list[str] = []

    class Recording:
        def observe(self, value: float, tags: dict) -> None:
            self.inc(tags)

        def inc(self, tags: dict) -> None:
            seen.append(tags["route"])
            tags["route"].encode("ascii")  # what Ray's C++ side does

    metrics = shared_client.app.state.metrics
    metrics._ray = {"latency": Recording(), "errors": Recording()}
    try:
        assert shared_client.get("/api/alerts/%C2%80").status_code == 401
        assert shared_client.get("/api/predictions/not-a-uuid").status_code == 400
        assert shared_client.get("/nowhere/\u00e9").status_code == 404
    finally:
        metrics._ray = {}
    assert seen[:2] == ["/api/alerts/{alert_id}", "/api/alerts/{alert_id}"]
    assert "/api/predictions/{prediction_id}" in seen and "(no route)" in seen
