"""The one clock of the system: now in UTC, and the two forms a moment takes.

Aware UTC (`datetime` with tzinfo) is what code passes around and the API answers; naive UTC is
what the schema's `TIMESTAMP` columns store. Every conversion between them is written here once,
so that no module guesses what a naive moment means (a naive one is always UTC).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import overload


def utc_now() -> datetime:
    """Now, aware UTC."""
    return datetime.now(timezone.utc)


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...


def as_utc(moment: datetime | None) -> datetime | None:
    """Aware UTC from a naive moment (taken as UTC) or any aware one; None stays None."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def naive_utc(moment: datetime) -> datetime:
    """Naive UTC, as the schema stores it: aware inputs are converted, naive ones trusted."""
    return moment if moment.tzinfo is None else moment.astimezone(timezone.utc).replace(tzinfo=None)


def naive_utc_now() -> datetime:
    """Now, as the schema stores it (naive UTC)."""
    return naive_utc(utc_now())
