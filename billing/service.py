"""What the billing routes do: Checkout for a tier, the customer portal, and webhooks."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from billing.errors import BillingError, billing_disabled
from billing.gateway import StripeGateway
from billing.lifecycle import NO_SUBSCRIPTION, holds_paid_plan
from billing.webhooks import WebhookHandler, WebhookResult
from clock import naive_utc, utc_now
from config import BillingSettings
from storage.db import session_scope
from storage.schema import Subscription, User

log = logging.getLogger(__name__)

CLOSED_STATUSES = frozenset({"canceled", "incomplete_expired", NO_SUBSCRIPTION})


class BillingService:
    def __init__(self, engine: Engine, settings: BillingSettings, clock: Callable[[], datetime] = utc_now) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.webhooks = WebhookHandler(engine, settings, clock)
        self._gateway: StripeGateway | None = None

    @property
    def gateway(self) -> StripeGateway:
        if not self.settings.enabled:
            raise billing_disabled()
        if self._gateway is None:
            self._gateway = StripeGateway(self.settings)
        return self._gateway

    def _subscription(self, user_id: uuid.UUID) -> Subscription | None:
        with session_scope(self.engine) as session:
            return session.exec(select(Subscription).where(Subscription.user_id == user_id)).first()

    def _customer(self, user_id: uuid.UUID, email: str) -> str:
        row = self._subscription(user_id)
        if row is not None:
            return row.stripe_customer_id
        customer = self.gateway.create_customer(user_id, email)
        try:
            with session_scope(self.engine) as session:
                session.add(Subscription(user_id=user_id, stripe_customer_id=customer, tier="free",
                                         status=NO_SUBSCRIPTION))
        except IntegrityError:  # a concurrent request stored the same customer first
            pass
        return customer

    def checkout(self, user_id: uuid.UUID, email: str, tier: str) -> str:
        """The URL of a Stripe Checkout page that subscribes the user to `tier`."""
        gateway = self.gateway
        price = self.settings.price_of(tier)
        if not price:
            raise BillingError(503, "billing_disabled", f"no Stripe price is configured for the {tier} tier")
        row = self._subscription(user_id)
        now = naive_utc(self.clock())
        if row is not None and holds_paid_plan(row.status, row.current_period_end, now):
            with session_scope(self.engine) as session:
                user = session.get(User, user_id)
            if user is not None and user.tier == tier:
                raise BillingError(409, "already_subscribed", f"you already have the {tier} plan")
            raise BillingError(409, "change_in_portal", f"you have the {row.tier} plan; change plans in the billing "
                                                        "portal (POST /api/billing/portal)")
        return gateway.checkout_url(self._customer(user_id, email), user_id, tier, price)

    def portal(self, user_id: uuid.UUID) -> str:
        gateway = self.gateway
        row = self._subscription(user_id)
        if row is None:
            raise BillingError(409, "no_subscription", "you have no billing account yet; subscribe first "
                                                       "(POST /api/billing/checkout)")
        return gateway.portal_url(row.stripe_customer_id)

    def webhook(self, payload: bytes, signature: str | None) -> WebhookResult:
        return self.webhooks.handle(payload, signature)

    def cancel_on_close(self, user_id: uuid.UUID) -> None:
        """Before an account is deleted: its live subscription is cancelled at Stripe exactly once
        (a retried deletion finds it canceled here or there), or the deletion stops with a 5xx,
        so that nobody keeps paying for an account that no longer exists."""
        row = self._subscription(user_id)
        if row is None or not row.stripe_subscription_id or row.status in CLOSED_STATUSES:
            return
        if not self.settings.enabled:
            raise BillingError(503, "billing_unavailable", "your subscription cannot be cancelled while billing is "
                                                           "off; try again later or cancel it in the billing portal")
        self.gateway.cancel_subscription(row.stripe_subscription_id)
        with session_scope(self.engine) as session:
            stored = session.get(Subscription, row.id)
            if stored is not None:
                stored.status, stored.updated_at = "canceled", naive_utc(self.clock())
                session.add(stored)
        log.info("subscription %s of user %s cancelled before the account's deletion", row.stripe_subscription_id,
                 user_id)
