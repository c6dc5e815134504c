"""Accounts people can live with: email verification, password reset and change, the sessions a
user controls, and deleting an account, on SQLite and on PostgreSQL + Redis, with the official
`resend` client against the loopback Resend and the `stripe` client against the loopback Stripe.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import select

from storage.db import session_scope
from storage.schema import AccountToken, Alert, Prediction, Subscription, TradingPlan, User, UserSession, Watchlist
from tests.conftest import PASSWORD, bearer, client_for, make_world, mark_verified, register_and_login, serve_world
from tests.fake_resend import FakeResend
from tests.fake_stripe import FakeStripe
from tests.test_billing import _billing_env, _event, _send, _subscription

BASE = "https://cryptocast.example"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def resend_server():
    with FakeResend() as fake:
        yield fake


def _mail_env(fake: FakeResend) -> dict[str, str]:
    return {"RESEND_API_KEY": fake.api_key, "RESEND_API_BASE": fake.base, "PUBLIC_BASE_URL": BASE}


def _link_token(email: dict[str, Any], fragment: str, base: str = BASE) -> str:
    found = re.search(rf"{re.escape(base)}/#{fragment}=([A-Za-z0-9_-]+)", email["text"])
    assert found, email["text"]
    return found.group(1)


def _emails_to(fake: FakeResend, address: str) -> list[dict[str, Any]]:
    return [e for e in fake.delivered if e["to"] == [address]]


def test_registration_emails_one_link_that_verifies_once(world, resend_server) -> None:
    client = client_for(world, **_mail_env(resend_server))
    token = register_and_login(client, "vera@example.com")
    [email] = _emails_to(resend_server, "vera@example.com")
    assert email["idempotency_key"].startswith("account-token-") and "Confirm" in email["subject"]
    assert client.get("/api/me", headers=bearer(token)).json()["user"]["email_verified"] is False
    link = _link_token(email, "verify")
    with session_scope(world["engine"]) as s:  # only the hash is kept, and the send is recorded
        row = s.exec(select(AccountToken)).one()
        assert row.token_hash != link and link not in row.token_hash and row.email_status == "sent"
    r = client.post("/api/auth/verify", json={"token": link})
    assert r.status_code == 200, r.text
    assert client.get("/api/me", headers=bearer(token)).json()["user"]["email_verified"] is True
    again = client.post("/api/auth/verify", json={"token": link})
    assert again.status_code == 400 and again.json()["error"]["code"] == "token_used"
    forged = client.post("/api/auth/verify", json={"token": "A" * 43})
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "invalid_token"
    assert client.post("/api/auth/verify", json={"token": "not a token!"}).status_code == 422
    r = client.post("/api/auth/verify/resend", headers=bearer(token))
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_verified"
    assert len(resend_server.delivered) == 1


def test_a_registration_with_a_taken_address_answers_as_a_new_one_and_tells_the_owner(world, resend_server) -> None:
    """The same status, shape and headers as a new registration (the id a new one, never stored);
    the account and its password unchanged; the owner emailed once an hour at most, no link in it."""
    client = client_for(world, **_mail_env(resend_server))
    owner = register_and_login(client, "owen@example.com")
    client.cookies.clear()
    taken = client.post("/api/auth/register", json={"email": "Owen@Example.com", "password": "another long pass"})
    fresh = client.post("/api/auth/register", json={"email": "nora@example.com", "password": "another long pass"})
    assert taken.status_code == fresh.status_code == 201
    assert set(taken.json()) == set(fresh.json()) and taken.json()["email"] == "owen@example.com"
    assert {k for k in taken.headers if k != "date"} == {k for k in fresh.headers if k != "date"}
    me = client.get("/api/me", headers=bearer(owner)).json()["user"]
    assert taken.json()["id"] != me["id"] and taken.json()["email_verified"] is False
    assert client.post("/api/auth/login", json={"email": "owen@example.com", "password": "another long pass"}
                       ).status_code == 401  # the password was not changed
    client.post("/api/auth/register", json={"email": "owen@example.com", "password": "a third long pass"})
    told = [e for e in _emails_to(resend_server, "owen@example.com") if "tried to register" in e["subject"]]
    assert len(told) == 1 and BASE in told[0]["text"] and "#" not in told[0]["text"]  # once an hour, no token
    with session_scope(world["engine"]) as s:
        assert len(s.exec(select(User).where(User.email == "owen@example.com")).all()) == 1


def test_an_expired_link_is_refused_and_resend_is_limited(world, resend_server) -> None:
    client = client_for(world, **_mail_env(resend_server))
    token = register_and_login(client, "late@example.com")
    first = _link_token(_emails_to(resend_server, "late@example.com")[0], "verify")
    r = client.post("/api/auth/verify/resend", headers=bearer(token))  # within the minute
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_requests" and r.headers["Retry-After"]
    for _ in range(5):  # five resends a day, a minute apart (the registration's not counted)
        world["clock"].now += timedelta(minutes=1, seconds=1)
        assert client.post("/api/auth/verify/resend", headers=bearer(token)).status_code == 202
    world["clock"].now += timedelta(minutes=2)
    r = client.post("/api/auth/verify/resend", headers=bearer(token))
    assert r.status_code == 429 and "5 verification emails a day" in r.json()["error"]["message"]
    assert len(_emails_to(resend_server, "late@example.com")) == 6
    world["clock"].now += timedelta(hours=24)
    r = client.post("/api/auth/verify", json={"token": first})
    assert r.status_code == 400 and r.json()["error"]["code"] == "token_expired"


def test_an_unverified_address_buys_no_tier_and_is_told_about_alert_emails(world) -> None:
    with FakeStripe() as stripe_server:
        client = client_for(world, **_billing_env(stripe_server))
        token = register_and_login(client, "new@example.com")
        r = client.post("/api/billing/checkout", json={"tier": "premium"}, headers=bearer(token))
        assert r.status_code == 403 and r.json()["error"]["code"] == "email_not_verified"
        assert "/api/auth/verify/resend" in r.json()["error"]["message"] and not stripe_server.requests
        alert = client.post("/api/alerts", json={"symbol": world["tickers"][0], "condition_type": "above",
                                                  "target_price": 1.0}, headers=bearer(token)).json()
        assert "no email" in alert["email_notice"]
        assert client.get("/api/alerts", headers=bearer(token)).json()["email_notice"]
        mark_verified(world, "new@example.com")
        assert client.get("/api/alerts", headers=bearer(token)).json()["email_notice"] is None
        assert client.post("/api/billing/checkout", json={"tier": "premium"}, headers=bearer(token)).status_code == 200


def test_forgot_answers_alike_and_the_reset_link_works_once(world, resend_server) -> None:
    client = client_for(world, **_mail_env(resend_server))
    phone = register_and_login(client, "rosa@example.com")
    laptop = client.post("/api/auth/login", json={"email": "rosa@example.com", "password": PASSWORD}).json()["token"]
    client.cookies.clear()
    known = client.post("/api/auth/password/forgot", json={"email": "Rosa@Example.com"})
    unknown = client.post("/api/auth/password/forgot", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert {k: v for k, v in known.headers.items() if k != "date"} == {
        k: v for k, v in unknown.headers.items() if k != "date"}
    resets = [e for e in _emails_to(resend_server, "rosa@example.com") if "Reset" in e["subject"]]
    assert len(resets) == 1 and not _emails_to(resend_server, "nobody@example.com")
    link = _link_token(resets[0], "reset")
    weak = client.post("/api/auth/password/reset", json={"token": link, "password": "short"})
    assert weak.status_code == 422  # a weak password does not waste the link
    r = client.post("/api/auth/password/reset", json={"token": link, "password": NEW_PASSWORD})
    assert r.status_code == 200, r.text
    for old in (phone, laptop):  # every session ended
        assert client.get("/api/me", headers=bearer(old)).status_code == 401
    again = client.post("/api/auth/password/reset", json={"token": link, "password": "yet another passphrase"})
    assert again.status_code == 400 and again.json()["error"]["code"] == "token_used"
    assert client.post("/api/auth/login", json={"email": "rosa@example.com", "password": PASSWORD}).status_code == 401
    assert client.post("/api/auth/login", json={"email": "rosa@example.com", "password": NEW_PASSWORD}).status_code == 200


def test_a_reset_link_expires_after_30_minutes_and_forgot_is_rate_limited(world, resend_server) -> None:
    client = client_for(world, **_mail_env(resend_server))
    register_and_login(client, "slow@example.com")
    client.post("/api/auth/password/forgot", json={"email": "slow@example.com"})
    link = _link_token(_emails_to(resend_server, "slow@example.com")[-1], "reset")
    world["clock"].now += timedelta(minutes=31)
    r = client.post("/api/auth/password/reset", json={"token": link, "password": NEW_PASSWORD})
    assert r.status_code == 400 and r.json()["error"]["code"] == "token_expired"
    for _ in range(5):  # five per 15 minutes from one address, known or unknown email alike
        client.post("/api/auth/password/forgot", json={"email": "slow@example.com"})
    resets = [e for e in _emails_to(resend_server, "slow@example.com") if "Reset" in e["subject"]]
    assert len(resets) == 2  # the first, then one a minute: the account's own limit dropped the rest silently
    for email in ("slow@example.com", "nobody@example.com"):
        r = client.post("/api/auth/password/forgot", json={"email": email})
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_requests"
    world["clock"].now += timedelta(minutes=16)
    assert client.post("/api/auth/password/forgot", json={"email": "slow@example.com"}).status_code == 202


def test_change_password_keeps_this_session_and_ends_the_others(world) -> None:
    client = client_for(world)
    here = register_and_login(client, "cam@example.com")
    there = client.post("/api/auth/login", json={"email": "cam@example.com", "password": PASSWORD}).json()["token"]
    client.cookies.clear()
    wrong = client.post("/api/auth/password/change", json={"current": "not it at all", "new": NEW_PASSWORD},
                        headers=bearer(here))
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_password"
    r = client.post("/api/auth/password/change", json={"current": PASSWORD, "new": NEW_PASSWORD}, headers=bearer(here))
    assert r.status_code == 200 and "1 other session" in r.json()["message"]
    assert client.get("/api/me", headers=bearer(here)).status_code == 200
    assert client.get("/api/me", headers=bearer(there)).status_code == 401


def test_sessions_are_listed_and_ended_by_their_owner_only(world) -> None:
    client = client_for(world)
    phone = register_and_login(client, "sid@example.com")
    laptop = client.post("/api/auth/login", json={"email": "sid@example.com", "password": PASSWORD},
                         headers={"User-Agent": "Laptop Browser/1.0"}).json()["token"]
    other = register_and_login(client, "eve@example.com")
    client.cookies.clear()
    listed = client.get("/api/auth/sessions", headers=bearer(phone)).json()["sessions"]
    assert len(listed) == 2 and [s["current"] for s in listed].count(True) == 1
    laptop_row = next(s for s in listed if s["user_agent"] == "Laptop Browser/1.0")
    assert laptop_row["current"] is False and laptop_row["created_at"] and laptop_row["last_used_at"]
    eves = client.get("/api/auth/sessions", headers=bearer(other)).json()["sessions"]
    for target in (eves[0]["id"], str(uuid.uuid4()), "not-a-uuid"):  # someone else's, missing, malformed: 404
        r = client.delete(f"/api/auth/sessions/{target}", headers=bearer(phone))
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get("/api/me", headers=bearer(other)).status_code == 200
    assert client.delete(f"/api/auth/sessions/{laptop_row['id']}", headers=bearer(phone)).status_code == 204
    assert client.get("/api/me", headers=bearer(laptop)).status_code == 401
    assert client.get("/api/me", headers=bearer(phone)).status_code == 200
    assert client.post("/api/auth/logout-all", headers=bearer(phone)).status_code == 204
    assert client.get("/api/me", headers=bearer(phone)).status_code == 401
    assert client.get("/api/me", headers=bearer(other)).status_code == 200


def test_the_session_list_keeps_a_network_not_an_address() -> None:
    from accounts.sessions import network_of

    assert network_of("203.0.113.77") == "203.0.113.0/24"
    assert network_of("2001:db8:1234:5678::1") == "2001:db8:1234::/48"
    assert network_of("testclient") is None


def _own_things(client, world, token: str) -> None:
    ticker = world["tickers"][0]
    assert client.post("/api/watchlists", json={"name": "Mine"}, headers=bearer(token)).status_code == 201
    assert client.post("/api/alerts", json={"symbol": ticker, "condition_type": "above", "target_price": 1.0},
                       headers=bearer(token)).status_code == 201
    assert client.post("/api/trading-plans", json={"symbol": ticker, "title": "Plan"},
                       headers=bearer(token)).status_code == 201
    assert client.post("/api/predictions/generate", json={"symbol": ticker, "timeframe": "1d"},
                       headers=bearer(token)).status_code == 200


def _count(world, table: Any, user_id: uuid.UUID) -> int:
    with world["engine"].connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(table.user_id == user_id))
                   .scalar_one())


def _user_id(world, email: str) -> uuid.UUID:
    with session_scope(world["engine"]) as s:
        return s.exec(select(User).where(User.email == email)).one().id


def test_deleting_an_account_removes_its_objects_and_keeps_the_forecasts(world) -> None:
    client = client_for(world)
    mine, theirs = register_and_login(client, "del@example.com"), register_and_login(client, "stay@example.com")
    _own_things(client, world, mine)
    _own_things(client, world, theirs)
    me, them = _user_id(world, "del@example.com"), _user_id(world, "stay@example.com")
    with session_scope(world["engine"]) as s:
        forecasts = [p.id for p in s.exec(select(Prediction).where(Prediction.user_id == me)).all()]
    assert forecasts
    wrong = client.request("DELETE", "/api/me", json={"password": "not my password"}, headers=bearer(mine))
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_password"
    assert client.request("DELETE", "/api/me", json={}, headers=bearer(mine)).status_code == 422
    assert client.request("DELETE", "/api/me", json={"password": PASSWORD}).status_code == 401
    r = client.request("DELETE", "/api/me", json={"password": PASSWORD}, headers=bearer(mine))
    assert r.status_code == 204, r.text
    assert client.get("/api/me", headers=bearer(mine)).status_code == 401
    for table in (Watchlist, Alert, TradingPlan, UserSession, AccountToken):
        assert _count(world, table, me) == 0, table
        assert _count(world, table, them) > 0 or table is AccountToken, table
    with session_scope(world["engine"]) as s:
        assert s.get(User, me) is None and s.get(User, them) is not None
        kept = [s.get(Prediction, p) for p in forecasts]
    assert all(p is not None and p.user_id is None for p in kept)  # the forecasts stay, unowned
    assert client.get("/api/watchlists", headers=bearer(theirs)).json()["watchlists"]


def test_deleting_a_subscriber_cancels_the_subscription_once(world) -> None:
    with FakeStripe() as stripe_server:
        client = client_for(world, **_billing_env(stripe_server))
        token = register_and_login(client, "paid@example.com")
        mark_verified(world, "paid@example.com")
        assert client.post("/api/billing/checkout", json={"tier": "premium"}, headers=bearer(token)).status_code == 200
        customer = stripe_server.calls("/v1/checkout/sessions")[-1]["customer"]
        now = int(time.time())
        _send(client, _event("customer.subscription.created",
                             _subscription(customer, "active", "premium", now + 86400 * 30, sub_id="sub_paid"), now))
        stripe_server.fail_next = 10  # Stripe down: nothing is deleted, the user is told to retry
        r = client.request("DELETE", "/api/me", json={"password": PASSWORD}, headers=bearer(token))
        assert r.status_code == 502 and r.json()["error"]["code"] == "billing_unavailable"
        assert client.get("/api/me", headers=bearer(token)).status_code == 200 and not stripe_server.cancelled
        stripe_server.fail_next = 0
        # the cancel goes through but our record of it is lost (a crash): the retry cancels nothing twice
        from billing.gateway import StripeGateway
        from config import load_settings

        StripeGateway(load_settings(_billing_env(stripe_server)).billing).cancel_subscription("sub_paid")
        r = client.request("DELETE", "/api/me", json={"password": PASSWORD}, headers=bearer(token))
        assert r.status_code == 204, r.text
        assert stripe_server.cancelled == ["sub_paid"]
        with session_scope(world["engine"]) as s:
            assert not s.exec(select(Subscription)).all()
        late = _send(client, _event("customer.subscription.deleted",  # Stripe's webhook, after the deletion
                                    _subscription(customer, "canceled", "premium", now + 86400 * 30,
                                                  sub_id="sub_paid"), now + 5))
        assert late.status_code == 200 and late.json()["outcome"] == "ignored"


@pytest.fixture
def page_server(pg_database_url, redis_cache, tmp_path, resend_server) -> Iterator[tuple[str, dict[str, Any]]]:
    """The app on PostgreSQL + Redis, its emails to the loopback Resend."""
    world = make_world(pg_database_url, redis_cache, tmp_path)
    with serve_world(world, **_mail_env(resend_server)) as base:
        yield base, world
    world["engine"].dispose()


def test_the_demo_account_walk_through_follows_the_links_in_the_outbox(world) -> None:
    """Without an email provider the emails land whole in EMAIL_OUTBOX, and `make demo`'s
    account walk-through (verify, sessions, reset, delete) runs on them."""
    from jobs.demo import _account_tour

    outbox = world["tmp"] / "outbox"
    with serve_world(world, EMAIL_OUTBOX=str(outbox)) as base:
        _account_tour(base, outbox)
    kept = [json.loads(p.read_text()) for p in outbox.glob("account-token-*.json")]
    assert sorted(e["subject"] for e in kept) == ["Confirm your email address for cryptocast",
                                                  "Reset your cryptocast password"]
    with session_scope(world["engine"]) as s:
        assert not s.exec(select(User).where(User.email.like("demo-%"))).all()  # type: ignore[attr-defined]
        assert {t.email_status for t in s.exec(select(AccountToken)).all()} <= {"not_sent"}


def _wait_for_email(fake: FakeResend, address: str, subject: str, count: int = 1) -> dict[str, Any]:
    deadline = time.time() + 20
    while time.time() < deadline:
        found = [e for e in _emails_to(fake, address) if subject in e["subject"]]
        if len(found) >= count:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no email '{subject}' to {address}: {fake.delivered}")


def test_the_account_on_the_page_in_a_real_browser(page_server, resend_server, browser) -> None:
    base, world = page_server
    email = "page@example.com"
    page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)  # its probes evaluate JavaScript
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(base + "/")
    # create an account on the page: signed in, and told to verify
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#register")
    page.wait_for_selector("#signed-in:not([hidden])", timeout=30_000)
    assert page.is_visible("#verify-banner")
    # the emailed link opens the page, verifies, and leaves the address bar clean
    page.goto(_verify_link(resend_server, email, base))
    page.wait_for_function("document.querySelector('#message').textContent.includes('verified')", timeout=30_000)
    page.wait_for_selector("#verify-banner", state="hidden", timeout=30_000)
    assert "#" not in page.url
    # sessions: another device signs in, is listed, and is signed out from here
    other = httpx.post(f"{base}/api/auth/login", json={"email": email, "password": PASSWORD},
                       headers={"User-Agent": "Other Device/2.0"}).json()["token"]
    page.click("#account-open")
    page.wait_for_selector("#sessions tbody tr >> nth=1", timeout=30_000)
    assert "this browser" in page.text_content("#sessions tbody")
    page.click("#sessions tbody tr:has-text('Other Device') button")
    page.wait_for_function("document.querySelectorAll('#sessions tbody tr').length === 1", timeout=30_000)
    assert httpx.get(f"{base}/api/me", headers=bearer(other)).status_code == 401
    # signed out, a forgotten password is reset through the emailed link
    page.click("#signout")
    page.wait_for_selector("#signin-form:not([hidden])", timeout=30_000)
    page.click("#forgot")
    page.fill("#forgot-email", email)
    page.click("#forgot-form button")
    page.wait_for_function("document.querySelector('#message').textContent.includes('on its way')", timeout=30_000)
    reset = _link_token(_wait_for_email(resend_server, email, "Reset"), "reset", base)
    page.goto(f"{base}/#reset={reset}")
    page.wait_for_selector("#reset-form:not([hidden])", timeout=30_000)
    page.fill("#reset-password", NEW_PASSWORD)
    page.click("#reset-form button")
    page.wait_for_function("document.querySelector('#message').textContent.includes('password changed')",
                           timeout=30_000)
    # sign in with the new password, then delete the account (asked twice)
    page.fill("#email", email)
    page.fill("#password", NEW_PASSWORD)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#signed-in:not([hidden])", timeout=30_000)
    page.click("#account-open")
    page.fill("#delete-password", NEW_PASSWORD)
    page.click("#delete-ask")
    page.wait_for_selector("#delete-confirm:not([hidden])", timeout=10_000)
    page.click("#delete-yes")
    page.wait_for_function("document.querySelector('#message').textContent.includes('deleted')", timeout=30_000)
    page.wait_for_selector("#signin-form:not([hidden])", timeout=30_000)
    assert httpx.post(f"{base}/api/auth/login", json={"email": email, "password": NEW_PASSWORD}).status_code == 401
    assert problems == []
    page.close()


def _verify_link(fake: FakeResend, address: str, base: str) -> str:
    return f"{base}/#verify={_link_token(_wait_for_email(fake, address, 'Confirm'), 'verify', base)}"


def test_a_failed_send_is_retried_as_the_same_email(world) -> None:
    """The provider fails once: the retry carries the same idempotency key, one email arrives."""
    with FakeResend(fail_first=1) as fake:
        client = client_for(world, **_mail_env(fake))
        register_and_login(client, "retry@example.com")
        assert fake.requests == 2 and len(fake.delivered) == 1
    with session_scope(world["engine"]) as s:
        row = s.exec(select(AccountToken)).one()
    assert fake.delivered[0]["idempotency_key"] == f"account-token-{row.id}" and row.email_status == "sent"
