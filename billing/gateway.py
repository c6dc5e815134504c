"""Stripe, through its official client: customers, Checkout Sessions, billing-portal sessions.

`STRIPE_API_BASE` points the client at another server (a loopback one in tests). Every failure
of Stripe becomes one `BillingError` 502 in the user's terms; the details go to the log.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TypeVar

import stripe

from billing.errors import BillingError, billing_disabled
from config import BillingSettings

T = TypeVar("T")

log = logging.getLogger(__name__)


class StripeGateway:
    def __init__(self, settings: BillingSettings) -> None:
        if not settings.api_key:
            raise billing_disabled()
        self.settings = settings
        addresses = {"api": settings.api_base} if settings.api_base else None
        self.client = stripe.StripeClient(settings.api_key.get_secret_value(), base_addresses=addresses, max_network_retries=2)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except stripe.StripeError as exc:
            raise self._failed(what, exc) from None

    @staticmethod
    def _failed(what: str, exc: stripe.StripeError) -> BillingError:
        log.error("stripe %s failed: %s (request id %s)", what, exc.user_message or type(exc).__name__,
                  getattr(exc, "request_id", None))
        return BillingError(502, "billing_unavailable", "the payment provider did not answer; please try again in a "
                                                        "minute")

    def create_customer(self, user_id: uuid.UUID, email: str) -> str:
        """One Stripe customer per user, even when two requests race: the idempotency key is the user."""
        customer = self._call("customer", lambda: self.client.v1.customers.create(
            params={"email": email, "metadata": {"user_id": str(user_id)}},
            options={"idempotency_key": f"cryptocast-customer-{user_id}"}))
        return str(customer.id)

    def checkout_url(self, customer_id: str, user_id: uuid.UUID, tier: str, price: str) -> str:
        base = self.settings.public_base_url
        metadata = {"user_id": str(user_id), "tier": tier}
        session = self._call("checkout session", lambda: self.client.v1.checkout.sessions.create(params={
            "mode": "subscription", "customer": customer_id, "client_reference_id": str(user_id),
            "line_items": [{"price": price, "quantity": 1}], "metadata": metadata,
            "subscription_data": {"metadata": metadata},
            "success_url": f"{base}/?checkout=success", "cancel_url": f"{base}/?checkout=cancelled",
        }))
        return str(session.url)

    def portal_url(self, customer_id: str) -> str:
        session = self._call("billing portal session", lambda: self.client.v1.billing_portal.sessions.create(
            params={"customer": customer_id, "return_url": f"{self.settings.public_base_url}/"}))
        return str(session.url)

    def cancel_subscription(self, subscription_id: str) -> None:
        """Cancel now. A retry after a cancel that went through (its answer lost, or our record of
        it) finds the subscription already canceled: that is the outcome wanted, not an error."""
        try:
            self.client.v1.subscriptions.cancel(subscription_id)
            return
        except stripe.InvalidRequestError as exc:
            log.info("stripe refused to cancel %s (%s); checking its status", subscription_id, exc.user_message)
        except stripe.StripeError as exc:
            raise self._failed("subscription cancel", exc) from None
        status = self._call("subscription", lambda: self.client.v1.subscriptions.retrieve(subscription_id)).status
        if status != "canceled":
            log.error("stripe subscription %s could not be cancelled (status %s)", subscription_id, status)
            raise BillingError(502, "billing_unavailable",
                               "the payment provider did not cancel your subscription; please try again in a minute")
