"""A refusal: what a service answers when it will not do what it was asked (an unknown object, a
limit reached, a bad input), in the terms the caller can act on. Every package raises its own
subclass (accounts, billing, portfolio, the prediction flow); the HTTP app answers all of them
alike, as `{"error": {"code", "message", ...}}` with the status and headers they carry.
"""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    """HTTP status, a stable machine-readable code, a message in the user's terms, optional
    response headers (Retry-After, ...) and extra fields of the error body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.extra = extra or {}
