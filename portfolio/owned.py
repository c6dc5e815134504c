"""Finding a user's own rows and the symbols they name."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlmodel import Session, SQLModel

from portfolio.errors import not_found
from predictions.symbols import resolve
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
    """The listed coin `ticker` names, written any way a person writes it (`predictions.symbols`)."""
    return resolve(session, ticker)
