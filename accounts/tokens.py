"""Session tokens: random from `secrets`, kept by the server only as their SHA-256."""

from __future__ import annotations

import hashlib
import re
import secrets

TOKEN_BYTES = 32
# token_urlsafe(32) is 43 characters of the URL-safe alphabet; anything else is not ours.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> str:
    """What the `sessions` table stores: a leaked table gives no usable token."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def well_formed(token: str) -> bool:
    return _TOKEN_SHAPE.fullmatch(token) is not None
