"""The error type of the billing package: what the API answers with."""

from __future__ import annotations


class BillingError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def billing_disabled() -> BillingError:
    return BillingError(503, "billing_disabled", "billing is not enabled on this server (no Stripe API key)")
