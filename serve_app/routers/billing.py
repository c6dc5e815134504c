"""Billing: Stripe Checkout and the customer portal for the signed-in user, and Stripe's webhook."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from accounts.verification import not_verified
from serve_app.dependencies import Billing, CurrentAccount
from serve_app.errors import CONFLICT, ERRORS, FORBIDDEN, UPSTREAM
from serve_app.schemas import CheckoutRequest, UrlResponse, WebhookResponse

router = APIRouter(tags=["billing"], responses=ERRORS)


@router.post("/api/billing/checkout", response_model=UrlResponse, responses=CONFLICT | UPSTREAM | FORBIDDEN)
def checkout(billing: Billing, account: CurrentAccount, body: CheckoutRequest) -> UrlResponse:
    """A Stripe Checkout page for a paid tier; the tier changes when Stripe's webhook confirms it.
    Only for a verified email address (403 `email_not_verified` before)."""
    if not account.email_verified:
        raise not_verified("buying a tier")
    return UrlResponse(url=billing.checkout(account.id, account.email, body.tier))


@router.post("/api/billing/portal", response_model=UrlResponse, responses=CONFLICT | UPSTREAM)
def portal(billing: Billing, account: CurrentAccount) -> UrlResponse:
    """Stripe's customer portal: change plan, payment method, cancel."""
    return UrlResponse(url=billing.portal(account.id))


@router.post("/api/webhooks/stripe", response_model=WebhookResponse)
async def stripe_webhook(billing: Billing, request: Request) -> WebhookResponse:
    """Stripe's signed events (`Stripe-Signature`); each event id is handled once."""
    payload = await request.body()
    result = await run_in_threadpool(billing.webhook, payload, request.headers.get("stripe-signature"))
    return WebhookResponse(received=True, event_id=result.event_id, outcome=result.outcome)
