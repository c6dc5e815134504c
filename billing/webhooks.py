"""Signed Stripe webhook events, each applied exactly once and never backwards.

The signature is checked with the official library (`Stripe-Signature`, 5-minute tolerance)
before the body is even parsed. The event id is inserted into `stripe_events` in the same
transaction as the change it causes: a repeated delivery (also two at once) finds the id and
changes nothing, and a failure rolls both back so that Stripe's retry applies it. An event older
than the newest one already applied for the same customer is recorded as `stale` and left
unapplied, so a late delivery never moves a user back to an older state.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
import stripe
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from billing.errors import BillingError, billing_disabled
from billing.lifecycle import NO_SUBSCRIPTION, PAID_STATUSES, PAID_TIERS, effective_tier
from clock import naive_utc, utc_now
from config import BillingSettings
from storage.db import session_scope
from storage.schema import StripeEvent, Subscription, User

log = logging.getLogger(__name__)

TOLERANCE_S = 300
SUBSCRIPTION_EVENTS = ("customer.subscription.created", "customer.subscription.updated",
                       "customer.subscription.deleted")


@dataclass(frozen=True)
class WebhookResult:
    event_id: str
    type: str
    outcome: str  # applied | stale | ignored | duplicate


def _utc_naive(epoch: Any) -> datetime | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).replace(tzinfo=None)


def _id_of(value: Any) -> str | None:
    """Stripe sends a related object as its id or, expanded, as the object itself."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _parse_user_id(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class WebhookHandler:
    def __init__(self, engine: Engine, settings: BillingSettings,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock

    def verify(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event, once its signature is proven; 400 for anything that is not a signed event."""
        if not self.settings.webhook_secret:
            raise billing_disabled()
        if not signature:
            raise BillingError(400, "missing_signature", "the Stripe-Signature header is missing")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise BillingError(400, "bad_body", "the webhook body is not UTF-8 text") from None
        try:
            stripe.WebhookSignature.verify_header(text, signature, self.settings.webhook_secret.get_secret_value(),
                                                  TOLERANCE_S)
        except (stripe.SignatureVerificationError, ValueError, IndexError):
            raise BillingError(400, "bad_signature", "the Stripe-Signature header does not verify: wrong secret, "
                                                     "an altered body, or a timestamp older than 5 minutes") from None
        try:
            event = json.loads(text)
        except ValueError:
            raise BillingError(400, "malformed_json", "the webhook body is not JSON") from None
        if not (isinstance(event, dict) and isinstance(event.get("id"), str) and isinstance(event.get("type"), str)
                and isinstance(event.get("created"), int) and isinstance(event.get("data"), dict)
                and isinstance(event["data"].get("object"), dict)):
            raise BillingError(400, "bad_event", "the webhook body is not a Stripe event (id, type, created, data.object)")
        return event

    def handle(self, payload: bytes, signature: str | None) -> WebhookResult:
        event = self.verify(payload, signature)
        obj = event["data"]["object"]
        kind = event["type"]
        customer = _id_of(obj.get("customer"))
        created = _utc_naive(event["created"])
        assert created is not None
        try:
            with session_scope(self.engine) as session:
                record = StripeEvent(id=event["id"], type=kind, customer_id=customer, created=created,
                                     outcome="pending")
                session.add(record)
                session.flush()  # a second delivery of this id stops here
                newest = None if customer is None else session.exec(
                    select(sa.func.max(StripeEvent.created)).where(
                        StripeEvent.customer_id == customer, StripeEvent.outcome == "applied",
                        StripeEvent.id != event["id"])).one()
                if newest is not None and newest > created:
                    record.outcome = "stale"
                else:
                    record.outcome = self._apply(session, kind, obj, customer)
                outcome = record.outcome
        except IntegrityError:
            outcome = "duplicate"
        log.info("stripe event %s %s: %s", event["id"], kind, outcome)
        return WebhookResult(event["id"], kind, outcome)

    # -- the changes ------------------------------------------------------------------------------
    def _apply(self, session: Session, kind: str, obj: dict[str, Any], customer: str | None) -> str:
        if kind == "checkout.session.completed":
            return self._checkout_completed(session, obj, customer)
        if kind in SUBSCRIPTION_EVENTS:
            return self._subscription_changed(session, obj, customer)
        if kind == "invoice.payment_failed":
            return self._payment_failed(session, customer)
        return "ignored"

    def _row(self, session: Session, customer: str | None, metadata: Any) -> Subscription | None:
        """Our subscription row of a customer, created from the metadata's user when it is new."""
        if customer is None:
            return None
        row = session.exec(select(Subscription).where(Subscription.stripe_customer_id == customer)).first()
        if row is not None:
            return row
        user_id = _parse_user_id((metadata or {}).get("user_id")) if isinstance(metadata, dict) else None
        if user_id is None or session.get(User, user_id) is None:
            log.warning("stripe customer %s belongs to no user of ours; event ignored", customer)
            return None
        row = Subscription(user_id=user_id, stripe_customer_id=customer, tier="free", status=NO_SUBSCRIPTION)
        session.add(row)
        return row

    def _sync_user(self, session: Session, row: Subscription) -> None:
        now = naive_utc(self.clock())
        row.updated_at = now
        user = session.get(User, row.user_id)
        if user is not None:
            tier = effective_tier(row.tier, row.status, row.current_period_end, now)
            if user.tier != tier:
                log.info("user %s: tier %s -> %s (subscription %s)", user.id, user.tier, tier, row.status)
            user.tier, user.updated_at = tier, now
        session.add(row)

    def _checkout_completed(self, session: Session, obj: dict[str, Any], customer: str | None) -> str:
        if obj.get("mode") != "subscription":
            return "ignored"
        metadata = dict(obj.get("metadata") or {})
        metadata.setdefault("user_id", obj.get("client_reference_id"))
        row = self._row(session, customer, metadata)
        if row is None:
            return "ignored"
        tier = metadata.get("tier")
        if tier in PAID_TIERS:
            row.tier = tier
        row.stripe_subscription_id = _id_of(obj.get("subscription")) or row.stripe_subscription_id
        if obj.get("payment_status") in ("paid", "no_payment_required") and row.status not in PAID_STATUSES:
            row.status = "active"
        self._sync_user(session, row)
        return "applied"

    def _subscription_changed(self, session: Session, sub: dict[str, Any], customer: str | None) -> str:
        row = self._row(session, customer, sub.get("metadata"))
        if row is None:
            return "ignored"
        items = ((sub.get("items") or {}).get("data") or [{}])
        item = items[0] if isinstance(items[0], dict) else {}
        price = _id_of(item.get("price"))
        tier = self.settings.tier_of_price(price) or (sub.get("metadata") or {}).get("tier")
        if tier in PAID_TIERS:
            row.tier = tier
        elif price:
            log.warning("subscription %s has price %s, which is none of ours; tier kept", sub.get("id"), price)
        row.stripe_subscription_id = _id_of(sub.get("id")) or row.stripe_subscription_id
        row.status = str(sub.get("status") or row.status)[:20]
        # newer API versions keep the period on the subscription item
        row.current_period_start = _utc_naive(sub.get("current_period_start") or item.get("current_period_start"))
        row.current_period_end = _utc_naive(sub.get("current_period_end") or item.get("current_period_end"))
        row.cancel_at_period_end = bool(sub.get("cancel_at_period_end"))
        self._sync_user(session, row)
        return "applied"

    def _payment_failed(self, session: Session, customer: str | None) -> str:
        row = self._row(session, customer, None)
        if row is None:
            return "ignored"
        if row.status in PAID_STATUSES:
            row.status = "past_due"  # Stripe retries; the tier holds until the period ends
        self._sync_user(session, row)
        return "applied"
