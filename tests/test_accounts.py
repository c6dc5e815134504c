"""Accounts: register, sign in, sessions, quotas and ownership, on the embedded SQLite with the
in-process cache and on the real PostgreSQL with the real Redis.

The forecaster is injected (a flat path from the last close): these tests are about who may ask
and how often; the forecasting path itself is tested in test_serving and the training tests.
"""

from __future__ import annotations

import logging
import statistics
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import select

from storage.cache import user_quota_key
from storage.db import make_engine, session_scope
from storage.migrate import upgrade
from storage.schema import (
    AnonymousUsage,
    ModelRecord,
    Prediction,
    PredictionStep,
    Symbol,
    UsageTracking,
    User,
    UserSession,
)
from tests.conftest import PASSWORD, START, bearer, client_for, register_and_login


def test_register_login_me_generate_logout(world) -> None:
    client = client_for(world)
    r = client.post("/api/auth/register", json={"email": "Ada@Example.com", "password": PASSWORD, "name": "Ada"})
    assert r.status_code == 201 and r.json()["email"] == "ada@example.com" and r.json()["tier"] == "free"
    assert "password" not in r.text and "hash" not in r.text
    r = client.post("/api/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    cookie = r.headers["set-cookie"]
    assert f"session={token}" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie and "Max-Age=2592000" in cookie
    assert pd.Timestamp(r.json()["expires_at"]) == pd.Timestamp(START + timedelta(days=30)).floor("s")
    client.cookies.clear()

    me = client.get("/api/me", headers=bearer(token)).json()
    assert me["tier"] == "free" and me["usage"] == {"date": "2026-03-10", "api_calls": 0, "limit": 10,
                                                    "remaining": 10, "reset_at": "2026-03-11T00:00:00Z"}
    r = client.post("/api/predictions/generate", json={"symbol": world["tickers"][0], "timeframe": "1d"},
                    headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.headers["X-RateLimit-Limit"] == "10" and r.headers["X-RateLimit-Remaining"] == "9"
    assert r.headers["X-RateLimit-Reset"] == str(int(datetime(2026, 3, 11, tzinfo=timezone.utc).timestamp()))
    pid = r.json()["prediction_id"]
    with session_scope(world["engine"]) as s:
        pred = s.get(Prediction, uuid.UUID(pid))
        user = s.exec(select(User).where(User.email == "ada@example.com")).one()
        assert pred.user_id == user.id  # a signed-in user's prediction carries their id
        # the token is kept only as its hash; the password only as argon2
        stored = s.exec(select(UserSession.session_token)).all()
        assert token not in stored and len(stored[0]) == 64
        assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    assert client.get("/api/me", headers=bearer(token)).json()["usage"]["api_calls"] == 1
    assert client.get(f"/api/predictions/{pid}", headers=bearer(token)).status_code == 200

    # the cookie alone authenticates, and logout ends that session
    client.cookies.set("session", token)
    assert client.get("/api/me").status_code == 200
    r = client.post("/api/auth/logout")
    assert r.status_code == 204 and 'session=""' in r.headers["set-cookie"]
    client.cookies.clear()
    r = client.get("/api/me", headers=bearer(token))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_session"
    assert client.post("/api/auth/logout", headers=bearer(token)).status_code == 401


def test_a_second_login_is_another_session(world) -> None:
    client = client_for(world)
    first = register_and_login(client, "bo@example.com")
    second = client.post("/api/auth/login", json={"email": "bo@example.com", "password": PASSWORD}).json()["token"]
    client.cookies.clear()
    assert first != second
    assert client.post("/api/auth/logout", headers=bearer(first)).status_code == 204
    assert client.get("/api/me", headers=bearer(first)).status_code == 401
    assert client.get("/api/me", headers=bearer(second)).status_code == 200


def test_expired_and_forged_tokens_are_refused(world) -> None:
    client = client_for(world, SESSION_TTL_DAYS="2")
    token = register_and_login(client, "cy@example.com")
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (forged, "x" * 43, token.upper() if token.upper() != token else token.lower()):
        r = client.get("/api/me", headers=bearer(bad))
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_session"
    world["clock"].now = START + timedelta(days=2, seconds=1)
    r = client.get("/api/me", headers=bearer(token))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_session"
    # an expired session is no anonymous pass either: forecasts with it are refused
    r = client.post("/api/predictions/generate", json={"symbol": world["tickers"][0], "timeframe": "1d"},
                    headers=bearer(token))
    assert r.status_code == 401


def test_duplicate_email_and_password_rules(world) -> None:
    client = client_for(world)
    assert client.post("/api/auth/register", json={"email": "dee@example.com", "password": PASSWORD}).status_code == 201
    r = client.post("/api/auth/register", json={"email": "DEE@example.com", "password": PASSWORD + "!"})
    assert r.status_code == 201  # as for a new address: who is registered is not told (tests/test_account_recovery.py)
    for password, code in (("short", "weak_password"), (" " * 12, "weak_password"), ("x" * 129, "invalid_password"),
                           ("x" * 10_000, "invalid_password"), ("abc\x00defghij", "invalid_password")):
        r = client.post("/api/auth/register", json={"email": "eve@example.com", "password": password})
        assert r.status_code == 422 and r.json()["error"]["code"] == code, (password[:20], r.text)
    with session_scope(world["engine"]) as s:
        assert len(s.exec(select(User)).all()) == 1


def test_login_answers_the_same_401_in_about_the_same_time(world) -> None:
    client = client_for(world)
    register_and_login(client, "fay@example.com")

    def attempt(email: str) -> tuple[float, dict]:
        started = time.perf_counter()
        r = client.post("/api/auth/login", json={"email": email, "password": "wrong password!"})
        assert r.status_code == 401
        return time.perf_counter() - started, r.json()

    # interleaved, so that a burst of load from elsewhere on the machine falls on both alike, and
    # enough of each that the medians ignore a few outliers
    unknown, wrong = [], []
    for _ in range(15):
        world["clock"].now += timedelta(minutes=16)  # each round after the throttle's window (tested below)
        unknown.append(attempt("nobody@example.com"))
        wrong.append(attempt("fay@example.com"))
    assert unknown[0][1] == wrong[0][1]  # same code, same message
    ratio = statistics.median(t for t, _ in unknown) / statistics.median(t for t, _ in wrong)
    assert 0.6 < ratio < 1.6, ratio


def test_wrong_passwords_back_off_per_account_and_per_address_alike_for_unknown_accounts(world) -> None:
    """Five wrong passwords are answered 401; then each try waits (429 + Retry-After, doubling),
    the right password included, an unknown account exactly alike; after the wait the right one
    signs in and clears the account's count. Twenty failures from one address over many accounts
    slow the address down too."""
    client = client_for(world)
    register_and_login(client, "gus@example.com")
    client.cookies.clear()

    def login(email: str, password: str = "wrong password!") -> Any:
        return client.post("/api/auth/login", json={"email": email, "password": password})

    for email in ("gus@example.com", "nobody-here@example.com"):
        assert [login(email).status_code for _ in range(5)] == [401] * 5
        held = login(email, PASSWORD)
        assert held.status_code == 429 and held.json()["error"]["code"] == "too_many_requests"
        assert held.headers["retry-after"] == "1"
    unknown_held = login("nobody-here@example.com")
    assert {k: v for k, v in held.headers.items() if k != "date"} == {
        k: v for k, v in unknown_held.headers.items() if k != "date"} and held.json() == unknown_held.json()
    world["clock"].now += timedelta(seconds=1)
    assert login("gus@example.com").status_code == 401  # the sixth failure: now 2 s
    assert login("gus@example.com", PASSWORD).headers["retry-after"] == "2"
    world["clock"].now += timedelta(seconds=2)
    assert login("gus@example.com", PASSWORD).status_code == 200
    assert login("gus@example.com").status_code == 401  # the count starts again
    world["clock"].now += timedelta(minutes=16)
    spray = [login(f"sprayed-{i}@example.com").status_code for i in range(21)]  # one address, many accounts
    assert spray[:20] == [401] * 20 and spray[20] == 429


def test_user_quota_is_exact_and_resets_at_the_next_utc_day(world) -> None:
    client = client_for(world, QUOTA_FREE="3")
    token = register_and_login(client, "gus@example.com")
    body = {"symbol": world["tickers"][1], "timeframe": "1d", "num_steps": 3}
    remaining = []
    for _ in range(3):
        r = client.post("/ml/predict", json=body, headers=bearer(token))
        assert r.status_code == 200, r.text
        remaining.append(r.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    r = client.post("/api/predictions/generate", json=body, headers=bearer(token))
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
    assert r.headers["Retry-After"] == str(2 * 3600)  # 22:00 -> midnight UTC
    assert r.headers["X-RateLimit-Remaining"] == "0" and r.headers["X-RateLimit-Limit"] == "3"
    assert "3 per UTC day" in r.json()["error"]["message"]
    # a call that fails (unknown symbol) is not counted
    world["clock"].now = START + timedelta(hours=2)  # 00:00 the next UTC day
    r = client.post("/api/predictions/generate", json={**body, "symbol": "X:NOSUCHUSD"}, headers=bearer(token))
    assert r.status_code == 404
    r = client.post("/api/predictions/generate", json=body, headers=bearer(token))
    assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "2"
    with session_scope(world["engine"]) as s:
        rows = sorted((u.date.isoformat(), u.api_calls, u.limit) for u in s.exec(select(UsageTracking)).all())
        user = s.exec(select(User).where(User.email == "gus@example.com")).one()
    assert rows == [("2026-03-10", 3, 3), ("2026-03-11", 1, 3)]
    assert int(world["cache"].get(user_quota_key(str(user.id), "2026-03-11"))) == 1
    assert client.get("/api/me", headers=bearer(token)).json()["usage"]["api_calls"] == 1


def test_anonymous_quota_per_client_address(world) -> None:
    client = client_for(world, QUOTA_ANONYMOUS="2")
    body = {"symbol": world["tickers"][2], "timeframe": "1d"}
    assert [client.post("/api/predictions/generate", json=body).status_code for _ in range(3)] == [200, 200, 429]
    other = TestClient(client.app, client=("10.1.2.3", 5000))  # another address has its own count
    assert other.post("/api/predictions/generate", json=body).status_code == 200
    # health and search stay open to anonymous callers beyond the quota
    assert client.get("/api/symbols/search", params={"q": world["tickers"][0][2:4]}).status_code == 200
    with session_scope(world["engine"]) as s:
        rows = s.exec(select(AnonymousUsage)).all()
    assert sorted(r.api_calls for r in rows) == [1, 2]
    assert all(len(r.client_hash) == 64 and "testclient" not in r.client_hash for r in rows)


def test_predictions_are_their_owners_alone(world) -> None:
    client = client_for(world)
    alice = register_and_login(client, "alice@example.com")
    bob = register_and_login(client, "bob@example.com")
    body = {"symbol": world["tickers"][0], "timeframe": "1d"}
    anonymous = client.post("/api/predictions/generate", json=body).json()
    mine = client.post("/api/predictions/generate", json=body, headers=bearer(alice)).json()
    assert mine["cached"] is True and mine["prediction_id"] != anonymous["prediction_id"]
    again = client.post("/api/predictions/generate", json=body, headers=bearer(alice)).json()
    assert again["prediction_id"] == mine["prediction_id"]  # her copy is cached for her
    assert client.get(f"/api/predictions/{mine['prediction_id']}", headers=bearer(alice)).json()["steps"] == mine["steps"]
    for headers in (bearer(bob), {}):
        r = client.get(f"/api/predictions/{mine['prediction_id']}", headers=headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_prediction"
    assert client.get(f"/api/predictions/{anonymous['prediction_id']}", headers=bearer(bob)).status_code == 200
    fresh = client.post("/ml/predict", json=body, headers=bearer(bob)).json()
    assert fresh["cached"] is False
    assert client.get(f"/api/predictions/{fresh['prediction_id']}", headers=bearer(alice)).status_code == 404
    with session_scope(world["engine"]) as s:
        steps = s.exec(select(PredictionStep).where(PredictionStep.prediction_id == uuid.UUID(mine["prediction_id"]))).all()
        assert len(steps) == 30
        # deleting a user keeps their predictions, without an owner (ON DELETE SET NULL)
        s.delete(s.exec(select(User).where(User.email == "alice@example.com")).one())
    with session_scope(world["engine"]) as s:
        assert s.get(Prediction, uuid.UUID(mine["prediction_id"])).user_id is None


BAD_INPUT = [
    ("register: malformed email", "post", "/api/auth/register", {"json": {"email": "not-an-email", "password": PASSWORD}}, 422),
    ("register: empty password", "post", "/api/auth/register", {"json": {"email": "h@example.com", "password": ""}}, 422),
    ("register: 10,000-char password", "post", "/api/auth/register",
     {"json": {"email": "h@example.com", "password": "p" * 10_000}}, 422),
    ("register: unknown field", "post", "/api/auth/register",
     {"json": {"email": "h@example.com", "password": PASSWORD, "tier": "pro"}}, 422),
    ("register: name of 10,000 chars", "post", "/api/auth/register",
     {"json": {"email": "h@example.com", "password": PASSWORD, "name": "n" * 10_000}}, 422),
    ("register: not JSON", "post", "/api/auth/register",
     {"content": b"email=h", "headers": {"content-type": "application/json"}}, 400),
    ("login: unknown field", "post", "/api/auth/login", {"json": {"email": "h@example.com", "password": PASSWORD, "x": 1}}, 422),
    ("login: empty password", "post", "/api/auth/login", {"json": {"email": "h@example.com", "password": ""}}, 422),
    ("me: token with a control byte", "get", "/api/me", {"headers": {"Authorization": "Bearer abc\x01def"}}, 401),
    ("me: token with an encoded NUL", "get", "/api/me", {"headers": {"Authorization": "Bearer abc%00def"}}, 401),
    ("me: 10 kB token", "get", "/api/me", {"headers": {"Authorization": "Bearer " + "a" * 10_240}}, 401),
    ("me: not a bearer scheme", "get", "/api/me", {"headers": {"Authorization": "Basic dTpw"}}, 401),
    ("me: empty bearer", "get", "/api/me", {"headers": {"Authorization": "Bearer "}}, 401),
    ("me: no credentials", "get", "/api/me", {}, 401),
    ("me: cookie with NUL", "get", "/api/me", {"headers": {"Cookie": "session=abc%00"}}, 401),
    ("generate: 10 kB token", "post", "/api/predictions/generate",
     {"json": {"symbol": "X:BTCUSD", "timeframe": "1d"}, "headers": {"Authorization": "Bearer " + "b" * 10_240}}, 401),
    ("logout: no session", "post", "/api/auth/logout", {}, 401),
]


@pytest.mark.parametrize("case", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_a_clear_4xx_and_writes_nothing(world, case) -> None:
    _, method, path, kwargs, status = case
    client = client_for(world)
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] and error["message"]
    with session_scope(world["engine"]) as s:
        assert s.exec(select(User)).all() == [] and s.exec(select(UserSession)).all() == []
        assert s.exec(select(AnonymousUsage)).all() == [] and s.exec(select(Prediction)).all() == []


def test_a_cookie_and_a_header_that_disagree(world) -> None:
    client = client_for(world)
    alice = register_and_login(client, "al@example.com")
    bob = register_and_login(client, "bo2@example.com")
    client.cookies.set("session", bob)
    r = client.get("/api/me", headers=bearer(alice))
    assert r.status_code == 400 and r.json()["error"]["code"] == "conflicting_credentials"
    r = client.post("/api/predictions/generate", json={"symbol": world["tickers"][0], "timeframe": "1d"},
                    headers=bearer(alice))
    assert r.status_code == 400
    with session_scope(world["engine"]) as s:
        assert s.exec(select(UsageTracking)).all() == []


def test_passwords_and_tokens_never_reach_the_log(world, caplog) -> None:
    client = client_for(world)
    with caplog.at_level(logging.DEBUG):
        token = register_and_login(client, "ivy@example.com")
        client.post("/api/auth/login", json={"email": "ivy@example.com", "password": "wrong password!"})
        client.get("/api/me", headers=bearer(token))
    assert PASSWORD not in caplog.text and "wrong password!" not in caplog.text and token not in caplog.text


def test_phase_one_rows_survive_the_upgrade(database_url: str) -> None:
    upgrade(database_url, "0001")
    engine = make_engine(database_url)
    sid, mid, pid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime(2024, 12, 31)
    with engine.begin() as conn:
        conn.execute(Symbol.__table__.insert().values(id=sid, ticker="X:BTCUSD", name="Bitcoin", volume_rank=1))
        conn.execute(ModelRecord.__table__.insert().values(
            id=mid, timeframe="1d", version="v1", training_start=now, training_end=now, num_symbols=1,
            model_path="/m", is_active=True, trained_at=now))
        conn.execute(sa.text("INSERT INTO predictions (id, symbol_id, timeframe, model_id, prediction_date, "
                             "predict_until, num_steps, direction) VALUES (:id, :sid, '1d', :mid, :now, :now, 2, 'up')"),
                     {"id": pid.hex if engine.dialect.name == "sqlite" else str(pid),
                      "sid": sid.hex if engine.dialect.name == "sqlite" else str(sid),
                      "mid": mid.hex if engine.dialect.name == "sqlite" else str(mid), "now": now})
        for i in (1, 2):
            conn.execute(PredictionStep.__table__.insert().values(
                id=uuid.uuid4(), prediction_id=pid, step_number=i, timestamp=now, open=1, high=2, low=0.5, close=1.5))
    engine.dispose()
    upgrade(database_url)
    engine = make_engine(database_url)
    with session_scope(engine) as s:
        assert s.get(Prediction, pid).direction == "up" and s.get(Prediction, pid).user_id is None
        assert len(s.exec(select(PredictionStep)).all()) == 2 and s.get(ModelRecord, mid).is_active
    # the new foreign key holds: a prediction cannot name a user that does not exist
    from sqlalchemy.exc import IntegrityError
    with pytest.raises(IntegrityError):
        with session_scope(engine) as s:
            s.add(Prediction(symbol_id=sid, user_id=uuid.uuid4(), timeframe="1d", model_id=mid, prediction_date=now,
                             predict_until=now, num_steps=1))
    with pytest.raises(IntegrityError):  # the timeframe check survived SQLite's table rebuild
        with session_scope(engine) as s:
            s.add(Prediction(symbol_id=sid, timeframe="2h", model_id=mid, prediction_date=now, predict_until=now,
                             num_steps=1))
    engine.dispose()


def test_the_cookie_is_secure_when_configured(world) -> None:
    client = client_for(world, COOKIE_SECURE="true")
    client.post("/api/auth/register", json={"email": "sec@example.com", "password": PASSWORD})
    cookie = client.post("/api/auth/login", json={"email": "sec@example.com", "password": PASSWORD}).headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie



def test_every_answer_carries_the_security_headers_and_https_adds_hsts(world) -> None:
    """The page, the API, an error and a static file: CSP from this origin only, no framing, no
    sniffing, the origin alone as referrer; HSTS and a Secure cookie by default once
    PUBLIC_BASE_URL is https (COOKIE_SECURE=false still turns the flag off)."""
    client = client_for(world)
    for path in ("/", "/api/health", "/api/no-such-route", "/static/app.js"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert "script-src 'self';" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "strict-origin-when-cross-origin" and "strict-transport-security" not in headers
    public = client_for(world, PUBLIC_BASE_URL="https://cast.example.com")
    assert public.get("/api/health").headers["strict-transport-security"].startswith("max-age=31536000")
    public.post("/api/auth/register", json={"email": "tls@example.com", "password": PASSWORD})
    cookie = public.post("/api/auth/login", json={"email": "tls@example.com", "password": PASSWORD}).headers["set-cookie"]
    assert "Secure" in cookie
    told = client_for(world, PUBLIC_BASE_URL="https://cast.example.com", COOKIE_SECURE="false")
    told.post("/api/auth/login", json={"email": "tls@example.com", "password": PASSWORD})
    assert "Secure" not in told.post("/api/auth/login", json={"email": "tls@example.com", "password": PASSWORD}
                                     ).headers["set-cookie"]


def test_registrations_are_limited_per_address(world) -> None:
    """Each registration sends an email: five an hour from one address, then 429 with
    Retry-After (nothing stored, nothing sent); another address is not held back."""
    client = client_for(world)
    made = [client.post("/api/auth/register", json={"email": f"r{i}@example.com", "password": PASSWORD}).status_code
            for i in range(6)]
    assert made == [201] * 5 + [429]
    other = TestClient(client.app, client=("203.0.113.9", 50000))
    assert other.post("/api/auth/register", json={"email": "r9@example.com", "password": PASSWORD}).status_code == 201
    world["clock"].now += timedelta(hours=1, seconds=1)
    assert client.post("/api/auth/register", json={"email": "r6@example.com", "password": PASSWORD}).status_code == 201
    with session_scope(world["engine"]) as s:
        assert len(s.exec(select(User).where(User.email.like("r%@example.com"))).all()) == 7  # type: ignore[attr-defined]
