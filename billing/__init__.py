"""Billing: Stripe subscriptions decide a user's tier (Phase III).

`lifecycle` holds the rules (which subscription status grants which tier), `gateway` the calls
to Stripe through its official client, `webhooks` the signed events that keep `subscriptions`
and `users.tier` in step, and `service` what the HTTP routes call.
"""
