"""Watchlists and their items: one default per user, items unique per list, ordered by position."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from clock import naive_utc_now
from config import TierLimits
from portfolio.errors import PortfolioError, not_found
from portfolio.owned import owned, parse_id, symbol
from storage.db import session_scope
from storage.schema import Symbol, Watchlist, WatchlistItem


@dataclass
class Watchlists:
    engine: Engine

    def _view(self, session: Session, wl: Watchlist) -> dict[str, Any]:
        rows = session.exec(select(WatchlistItem, Symbol).join(Symbol, Symbol.id == WatchlistItem.symbol_id)
                            .where(WatchlistItem.watchlist_id == wl.id)
                            .order_by(WatchlistItem.position, WatchlistItem.added_at)).all()
        return {"id": str(wl.id), "name": wl.name, "is_default": bool(wl.is_default), "created_at": wl.created_at,
                "updated_at": wl.updated_at,
                "items": [{"id": str(i.id), "symbol": s.ticker, "name": s.name, "position": i.position,
                           "added_at": i.added_at} for i, s in rows]}

    def list(self, user_id: uuid.UUID) -> list[dict[str, Any]]:
        with session_scope(self.engine) as session:
            lists = session.exec(select(Watchlist).where(Watchlist.user_id == user_id)
                                 .order_by(Watchlist.created_at, Watchlist.name)).all()
            return [self._view(session, wl) for wl in lists]

    def get(self, user_id: uuid.UUID, watchlist_id: str) -> dict[str, Any]:
        with session_scope(self.engine) as session:
            return self._view(session, owned(session, Watchlist, watchlist_id, user_id, "watchlist"))

    @staticmethod
    def _only_default(session: Session, user_id: uuid.UUID, keep: uuid.UUID) -> None:
        session.execute(sa.update(Watchlist).where(Watchlist.user_id == user_id, Watchlist.id != keep)
                        .values(is_default=False))

    def create(self, user_id: uuid.UUID, limits: TierLimits, name: str, is_default: bool | None) -> dict[str, Any]:
        with session_scope(self.engine) as session:
            count = session.exec(select(sa.func.count()).select_from(Watchlist)
                                 .where(Watchlist.user_id == user_id)).one()
            if count >= limits.watchlists:
                raise PortfolioError(403, "limit_reached", f"your tier allows {limits.watchlists} watchlists; "
                                                           "delete one or upgrade")
            now = naive_utc_now()
            wl = Watchlist(user_id=user_id, name=name, is_default=bool(is_default) or count == 0, created_at=now,
                           updated_at=now)
            session.add(wl)
            session.flush()
            if wl.is_default:
                self._only_default(session, user_id, wl.id)
            return self._view(session, wl)

    def update(self, user_id: uuid.UUID, watchlist_id: str, name: str | None, is_default: bool | None) -> dict[str, Any]:
        with session_scope(self.engine) as session:
            wl = owned(session, Watchlist, watchlist_id, user_id, "watchlist")
            if name is not None:
                wl.name = name
            if is_default is True:
                wl.is_default = True
                self._only_default(session, user_id, wl.id)
            elif is_default is False and wl.is_default:
                raise PortfolioError(422, "default_required", "one watchlist is always the default: make another "
                                                              "one the default instead")
            wl.updated_at = naive_utc_now()
            session.add(wl)
            session.flush()
            return self._view(session, wl)

    def delete(self, user_id: uuid.UUID, watchlist_id: str) -> None:
        with session_scope(self.engine) as session:
            wl = owned(session, Watchlist, watchlist_id, user_id, "watchlist")
            was_default = wl.is_default
            session.delete(wl)
            session.flush()
            if was_default:  # the oldest remaining list takes over
                nxt = session.exec(select(Watchlist).where(Watchlist.user_id == user_id)
                                   .order_by(Watchlist.created_at)).first()
                if nxt is not None:
                    nxt.is_default = True
                    session.add(nxt)

    def add_item(self, user_id: uuid.UUID, limits: TierLimits, watchlist_id: str, ticker: str,
                 position: int | None) -> dict[str, Any]:
        try:
            with session_scope(self.engine) as session:
                wl = owned(session, Watchlist, watchlist_id, user_id, "watchlist")
                sym = symbol(session, ticker)
                count = session.exec(select(sa.func.count()).select_from(WatchlistItem)
                                     .where(WatchlistItem.watchlist_id == wl.id)).one()
                if count >= limits.watchlist_items:
                    raise PortfolioError(403, "limit_reached", f"your tier allows {limits.watchlist_items} symbols "
                                                               "per watchlist")
                item = WatchlistItem(watchlist_id=wl.id, symbol_id=sym.id,
                                     position=count if position is None else position, added_at=naive_utc_now())
                session.add(item)
                session.flush()
                return {"id": str(item.id), "symbol": sym.ticker, "name": sym.name, "position": item.position,
                        "added_at": item.added_at}
        except IntegrityError:
            raise PortfolioError(409, "already_in_watchlist", f"{ticker} is already in this watchlist") from None

    def remove_item(self, user_id: uuid.UUID, watchlist_id: str, item_id: str) -> None:
        with session_scope(self.engine) as session:
            wl = owned(session, Watchlist, watchlist_id, user_id, "watchlist")
            item = session.get(WatchlistItem, parse_id(item_id, "watchlist item"))
            if item is None or item.watchlist_id != wl.id:
                raise not_found("watchlist item", item_id)
            session.delete(item)

    def reorder(self, user_id: uuid.UUID, watchlist_id: str, positions: dict[str, int]) -> dict[str, Any]:
        """Set the positions of the named items in one transaction (all or nothing)."""
        with session_scope(self.engine) as session:
            wl = owned(session, Watchlist, watchlist_id, user_id, "watchlist")
            items = {str(i.id): i for i in session.exec(select(WatchlistItem)
                                                         .where(WatchlistItem.watchlist_id == wl.id)).all()}
            unknown = [k for k in positions if k not in items]
            if unknown:
                raise not_found("watchlist item", unknown[0])
            for item_id, position in positions.items():
                items[item_id].position = position
                session.add(items[item_id])
            wl.updated_at = naive_utc_now()
            session.add(wl)
            session.flush()
            return self._view(session, wl)
