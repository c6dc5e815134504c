"""The one error type of the accounts package, carrying what the API answers with."""

from __future__ import annotations

from refusals import Refusal


class AccountError(Refusal):
    """A refusal of the accounts package (sign-in, sessions, quotas)."""
