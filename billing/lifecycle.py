"""Which tier a subscription's status grants: the one rule, shared by webhooks and quotas.

Stripe's statuses: active and trialing are paid; past_due (a renewal payment failed, Stripe is
retrying) keeps the tier until the paid period ends; canceled, unpaid, incomplete (the first
payment never went through), incomplete_expired and paused are the free tier.
"""

from __future__ import annotations

from datetime import datetime

PAID_STATUSES = frozenset({"active", "trialing"})
GRACE_STATUS = "past_due"
PAID_TIERS = ("premium", "pro")
NO_SUBSCRIPTION = "none"  # a Stripe customer of ours that has not subscribed (yet)


def effective_tier(tier: str, status: str | None, period_end: datetime | None, now: datetime) -> str:
    """The tier a user has now, given their subscription (times naive UTC)."""
    if status in PAID_STATUSES:
        return tier
    if status == GRACE_STATUS and (period_end is None or now < period_end):
        return tier
    return "free"


def holds_paid_plan(status: str | None, period_end: datetime | None, now: datetime) -> bool:
    return effective_tier("premium", status, period_end, now) != "free"
