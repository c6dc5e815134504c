"""The one error type of the accounts package, carrying what the API answers with."""

from __future__ import annotations


class AccountError(Exception):
    """A refusal the caller can act on: HTTP status, stable code, message in the user's terms."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
