"""Billing with Stripe: Checkout and the portal through the official client against a loopback
Stripe, and signed webhook events (the library's own signing scheme) that move a user's tier
exactly once per event and never backwards. SQLite + in-process and PostgreSQL + Redis."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
import stripe
from sqlmodel import select

from storage.db import session_scope
from storage.schema import StripeEvent, Subscription, User
from tests.conftest import START, bearer, client_for, mark_verified, register_and_login
from tests.fake_stripe import FakeStripe

SECRET = "whsec_test_loopback"
PRICES = {"premium": "price_premium_test", "pro": "price_pro_test"}


@pytest.fixture
def stripe_server():
    with FakeStripe() as fake:
        yield fake


def _billing_env(fake: FakeStripe, **extra: str) -> dict[str, str]:
    return {"STRIPE_API_KEY": fake.api_key, "STRIPE_API_BASE": fake.base, "STRIPE_WEBHOOK_SECRET": SECRET,
            "STRIPE_PRICE_PREMIUM": PRICES["premium"], "STRIPE_PRICE_PRO": PRICES["pro"],
            "PUBLIC_BASE_URL": "https://cryptocast.example", "QUOTA_FREE": "2", "QUOTA_PREMIUM": "4",
            "QUOTA_PRO": "6", **extra}


def _event(kind: str, obj: dict[str, Any], created: int, event_id: str | None = None) -> dict[str, Any]:
    return {"id": event_id or f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "api_version": "2025-10-29.clover",
            "type": kind, "created": created, "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "data": {"object": obj}}


def _subscription(customer: str, status: str, tier: str, period_end: int, *, sub_id: str = "sub_1",
                  cancel: bool = False) -> dict[str, Any]:
    start = period_end - 30 * 86400
    return {"id": sub_id, "object": "subscription", "customer": customer, "status": status,
            "cancel_at_period_end": cancel, "metadata": {},
            "items": {"object": "list", "data": [{"id": "si_1", "object": "subscription_item",
                                                  "price": {"id": PRICES[tier], "object": "price"},
                                                  "current_period_start": start, "current_period_end": period_end}]}}


def _send(client, event: dict[str, Any] | None = None, *, payload: str | None = None, secret: str = SECRET,
          timestamp: int | None = None, header: str | None = "sign"):
    payload = payload if payload is not None else json.dumps(event)
    headers = {"content-type": "application/json"}
    if header == "sign":
        headers["Stripe-Signature"] = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)
    elif header is not None:
        headers["Stripe-Signature"] = header
    return client.post("/api/webhooks/stripe", content=payload.encode(), headers=headers)


def _tier(world, email: str) -> str:
    with session_scope(world["engine"]) as s:
        return s.exec(select(User).where(User.email == email)).one().tier


def _forecast(client, world, token: str) -> int:
    return client.post("/ml/predict", json={"symbol": world["tickers"][0], "timeframe": "1d", "num_steps": 2},
                       headers=bearer(token)).status_code


def _subscribe(client, world, stripe_server, email: str) -> tuple[str, str]:
    """A signed-in user who went through Checkout for premium: (token, Stripe customer id)."""
    token = register_and_login(client, email)
    mark_verified(world, email)
    r = client.post("/api/billing/checkout", json={"tier": "premium"}, headers=bearer(token))
    assert r.status_code == 200, r.text
    customer = stripe_server.calls("/v1/checkout/sessions")[-1]["customer"]
    return token, customer


def test_checkout_creates_the_customer_once_and_portal_reuses_it(world, stripe_server) -> None:
    client = client_for(world, **_billing_env(stripe_server))
    token = register_and_login(client, "ana@example.com")
    mark_verified(world, "ana@example.com")
    r = client.post("/api/billing/portal", headers=bearer(token))
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_subscription"
    first = client.post("/api/billing/checkout", json={"tier": "premium"}, headers=bearer(token))
    assert first.status_code == 200 and first.json()["url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    second = client.post("/api/billing/checkout", json={"tier": "pro"}, headers=bearer(token))
    assert second.status_code == 200
    customers = stripe_server.calls("/v1/customers")
    assert len(customers) == 1 and customers[0]["email"] == "ana@example.com"
    sessions = stripe_server.calls("/v1/checkout/sessions")
    assert [s["line_items"][0]["price"] for s in sessions] == [PRICES["premium"], PRICES["pro"]]
    for s in sessions:
        assert s["mode"] == "subscription" and s["customer"] == sessions[0]["customer"]
        assert s["success_url"].startswith("https://cryptocast.example/") and s["client_reference_id"]
        assert s["metadata"]["user_id"] == s["client_reference_id"]
    idempotency = [h.get("idempotency-key") for _, p, _, h in stripe_server.requests if p == "/v1/customers"]
    assert idempotency == [f"cryptocast-customer-{sessions[0]['client_reference_id']}"]
    portal = client.post("/api/billing/portal", headers=bearer(token))
    assert portal.status_code == 200 and portal.json()["url"].startswith("https://billing.stripe.com/p/session/")
    assert stripe_server.calls("/v1/billing_portal/sessions")[0]["customer"] == sessions[0]["customer"]
    assert _tier(world, "ana@example.com") == "free"  # nothing changes before Stripe's webhook says so


def test_upgrade_downgrade_cancel_and_payment_failure_follow_the_webhooks(world, stripe_server) -> None:
    client = client_for(world, **_billing_env(stripe_server, SESSION_TTL_DAYS="90"))
    email = "bea@example.com"
    token, customer = _subscribe(client, world, stripe_server, email)
    assert [_forecast(client, world, token) for _ in range(3)] == [200, 200, 429]  # free: 2 a day
    now = int(time.time())
    period_end = int((START + timedelta(days=30)).timestamp())
    user_id = stripe_server.calls("/v1/checkout/sessions")[-1]["client_reference_id"]
    completed = {"id": "cs_test_1", "object": "checkout.session", "mode": "subscription", "customer": customer,
                 "subscription": "sub_1", "client_reference_id": user_id, "payment_status": "paid",
                 "metadata": {"user_id": user_id, "tier": "premium"}}
    r = _send(client, _event("checkout.session.completed", completed, now - 50))
    assert r.status_code == 200 and r.json()["outcome"] == "applied"
    assert _tier(world, email) == "premium"
    # the next request already counts against the premium quota (4): two more today
    assert [_forecast(client, world, token) for _ in range(3)] == [200, 200, 429]
    assert client.get("/api/me", headers=bearer(token)).json()["usage"]["limit"] == 4

    r = _send(client, _event("customer.subscription.updated", _subscription(customer, "active", "pro", period_end),
                             now - 40))
    assert r.json()["outcome"] == "applied" and _tier(world, email) == "pro"
    assert _forecast(client, world, token) == 200  # pro: 6 a day
    r = _send(client, _event("customer.subscription.updated",
                             _subscription(customer, "active", "premium", period_end), now - 30))
    assert _tier(world, email) == "premium"

    # cancellation at the period's end keeps the tier until Stripe ends the subscription
    r = _send(client, _event("customer.subscription.updated",
                             _subscription(customer, "active", "premium", period_end, cancel=True), now - 20))
    assert _tier(world, email) == "premium"
    with session_scope(world["engine"]) as s:
        row = s.exec(select(Subscription).where(Subscription.stripe_customer_id == customer)).one()
        assert row.cancel_at_period_end is True and row.stripe_subscription_id == "sub_1"
        assert row.current_period_end == (START + timedelta(days=30)).replace(tzinfo=None)
    r = _send(client, _event("customer.subscription.deleted",
                             _subscription(customer, "canceled", "premium", period_end, cancel=True), now - 10))
    assert r.json()["outcome"] == "applied" and _tier(world, email) == "free"

    # subscribe again; a failed renewal keeps the tier until the paid period ends, then free
    r = _send(client, _event("customer.subscription.created",
                             _subscription(customer, "active", "pro", period_end, sub_id="sub_2"), now))
    assert _tier(world, email) == "pro"
    r = _send(client, _event("invoice.payment_failed", {"id": "in_1", "object": "invoice", "customer": customer,
                                                        "subscription": "sub_2", "attempt_count": 1}, now))
    assert r.json()["outcome"] == "applied"
    with session_scope(world["engine"]) as s:
        assert s.exec(select(Subscription)).one().status == "past_due"
    assert client.get("/api/me", headers=bearer(token)).json()["tier"] == "pro"
    world["clock"].now = START + timedelta(days=30, seconds=1)
    me = client.get("/api/me", headers=bearer(token)).json()
    assert me["tier"] == "free" and me["usage"]["limit"] == 2


def test_each_event_is_handled_once_and_never_backwards(world, stripe_server) -> None:
    client = client_for(world, **_billing_env(stripe_server))
    email = "cid@example.com"
    _, customer = _subscribe(client, world, stripe_server, email)
    now = int(time.time())
    period_end = now + 30 * 86400
    upgrade = _event("customer.subscription.created", _subscription(customer, "active", "premium", period_end),
                     now - 100, event_id="evt_upgrade")
    cancel = _event("customer.subscription.deleted", _subscription(customer, "canceled", "premium", period_end),
                    now - 10, event_id="evt_cancel")
    assert _send(client, upgrade).json()["outcome"] == "applied"
    assert _send(client, upgrade).json()["outcome"] == "duplicate"  # a replay is handled once
    assert _send(client, cancel).json()["outcome"] == "applied"
    assert _tier(world, email) == "free"
    # an older event delivered late, under a new id, does not bring the old state back
    late = _event("customer.subscription.updated", _subscription(customer, "active", "premium", period_end),
                  now - 50, event_id="evt_late")
    assert _send(client, late).json()["outcome"] == "stale"
    assert _send(client, upgrade).json()["outcome"] == "duplicate"
    assert _tier(world, email) == "free"
    with session_scope(world["engine"]) as s:
        outcomes = {e.id: e.outcome for e in s.exec(select(StripeEvent)).all()}
    assert outcomes == {"evt_upgrade": "applied", "evt_cancel": "applied", "evt_late": "stale"}
    # an event type we do not handle: 200, recorded as ignored
    r = _send(client, _event("customer.created", {"id": customer, "object": "customer"}, now, event_id="evt_x"))
    assert r.status_code == 200 and r.json()["outcome"] == "ignored"


def test_events_that_do_not_verify_change_nothing(world, stripe_server) -> None:
    client = client_for(world, **_billing_env(stripe_server))
    email = "dot@example.com"
    _, customer = _subscribe(client, world, stripe_server, email)
    now = int(time.time())
    event = _event("customer.subscription.created",
                   _subscription(customer, "active", "pro", now + 86400 * 30), now)
    payload = json.dumps(event)
    tampered = payload.replace('"active"', '"trialing"')
    assert tampered != payload
    header = stripe.WebhookSignature.generate_signature_header(payload, SECRET)
    cases = [
        ("tampered body", dict(payload=tampered, header=header), "bad_signature"),
        ("wrong secret", dict(payload=payload, secret="whsec_wrong"), "bad_signature"),
        ("stale timestamp", dict(payload=payload, timestamp=now - 600), "bad_signature"),
        ("no signature header", dict(payload=payload, header=None), "missing_signature"),
        ("garbage header", dict(payload=payload, header="nonsense"), "bad_signature"),
        ("signed, not JSON", dict(payload="not json {"), "malformed_json"),
        ("signed JSON, not an event", dict(payload=json.dumps({"hello": "world"})), "bad_event"),
    ]
    for name, kwargs, code in cases:
        r = _send(client, **kwargs)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, (name, r.text)
    r = client.post("/api/webhooks/stripe", content=b"\xff\xfe", headers={"Stripe-Signature": header})
    assert r.status_code == 400
    assert _tier(world, email) == "free"
    with session_scope(world["engine"]) as s:
        assert s.exec(select(StripeEvent)).all() == []


def test_checkout_refusals(world, stripe_server) -> None:
    client = client_for(world, **_billing_env(stripe_server))
    token, customer = _subscribe(client, world, stripe_server, "eli@example.com")
    for body in ({"tier": "gold"}, {"tier": "free"}, {}, {"tier": "pro", "coupon": "x"}):
        r = client.post("/api/billing/checkout", json=body, headers=bearer(token))
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", body
    assert client.post("/api/billing/checkout", json={"tier": "pro"}).status_code == 401  # not signed in
    now = int(time.time())
    _send(client, _event("customer.subscription.created",
                         _subscription(customer, "active", "premium", now + 86400 * 30), now))
    r = client.post("/api/billing/checkout", json={"tier": "premium"}, headers=bearer(token))
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_subscribed"
    r = client.post("/api/billing/checkout", json={"tier": "pro"}, headers=bearer(token))
    assert r.status_code == 409 and r.json()["error"]["code"] == "change_in_portal"
    stripe_server.fail_next = 10  # Stripe down: a clear 502, no internals
    r = client.post("/api/billing/portal", headers=bearer(token))
    assert r.status_code == 502 and r.json()["error"]["code"] == "billing_unavailable"
    assert "loopback" not in r.text and "Traceback" not in r.text


def test_without_a_key_billing_is_disabled_and_the_rest_works(world) -> None:
    client = client_for(world)
    token = register_and_login(client, "fin@example.com")
    for path, body in (("/api/billing/checkout", {"tier": "pro"}), ("/api/billing/portal", None)):
        r = client.post(path, json=body, headers=bearer(token))
        assert r.status_code == 503 and r.json()["error"]["code"] == "billing_disabled"
    r = client.post("/api/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=x"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "billing_disabled"
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    assert _forecast(client, world, token) == 200
