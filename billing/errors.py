"""The error type of the billing package: what the API answers with."""

from __future__ import annotations

from refusals import Refusal


class BillingError(Refusal):
    """A refusal of the billing package (checkout, webhooks, subscriptions)."""


def billing_disabled() -> BillingError:
    return BillingError(503, "billing_disabled", "billing is not enabled on this server (no Stripe API key)")
