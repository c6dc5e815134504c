"""Finding a user's own rows and the symbols they name."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlmodel import Session, SQLModel, select

from portfolio.errors import PortfolioError, not_found
from storage.schema import Symbol

Row = TypeVar("Row", bound=SQLModel)


def parse_id(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found(what, value) from None


def owned(session: Session, model: type[Row], object_id: str, user_id: uuid.UUID, what: str) -> Row:
    """The row if it exists and is the user's; otherwise 404, the same for both."""
    row = session.get(model, parse_id(object_id, what))
    if row is None or row.user_id != user_id:
        raise not_found(what, object_id)
    return row


def symbol(session: Session, ticker: str) -> Symbol:
    found = session.exec(select(Symbol).where(Symbol.ticker == ticker)).first()
    if found is None:
        raise PortfolioError(404, "unknown_symbol", f"no symbol {ticker!r}; search with /api/symbols/search?q=")
    return found
