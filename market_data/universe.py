"""The symbol universe in the database: sync with the source, rank by USD volume, pick the top N."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from clock import naive_utc_now
from market_data.source import MarketSource, utc
from storage.db import session_scope
from storage.schema import Symbol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncResult:
    added: int
    reactivated: int
    deactivated: int
    active: int


@dataclass(frozen=True)
class RankResult:
    day: date
    ranked: int
    unranked: int


def sync_symbols(engine: Engine, source: MarketSource) -> SyncResult:
    """Add tickers the source lists, mark vanished ones inactive, reactivate returning ones."""
    listed = {t.ticker: t for t in source.list_tickers()}
    if not listed:
        raise RuntimeError(f"market source {source.name!r} listed no tickers; refusing to deactivate every symbol")
    added = reactivated = deactivated = 0
    with session_scope(engine) as session:
        existing = {s.ticker: s for s in session.exec(select(Symbol)).all()}
        for ticker, info in listed.items():
            row = existing.get(ticker)
            if row is None:
                session.add(Symbol(ticker=ticker, name=info.name[:255], base_currency=info.base_currency,
                                   quote_currency=info.quote_currency, is_active=True, last_updated=naive_utc_now()))
                added += 1
            elif not row.is_active:
                row.is_active, row.last_updated = True, naive_utc_now()
                reactivated += 1
        for ticker, row in existing.items():
            if ticker not in listed and row.is_active:
                row.is_active, row.last_updated = False, naive_utc_now()
                deactivated += 1
    return SyncResult(added=added, reactivated=reactivated, deactivated=deactivated, active=len(listed))


def last_full_day(as_of: datetime) -> date:
    """The last UTC day that had ended by `as_of`."""
    return (utc(as_of).floor("1D") - timedelta(days=1)).date()


def usd_volume(grouped: pd.DataFrame) -> pd.Series:
    """Token volume x VWAP; where a source gives no VWAP, the typical price (h + l + c) / 3 stands in."""
    price = grouped["vwap"].where(grouped["vwap"] > 0, (grouped["high"] + grouped["low"] + grouped["close"]) / 3)
    return grouped["volume"] * price


def rank_symbols(engine: Engine, source: MarketSource, as_of: datetime) -> RankResult:
    """Rank every symbol by the USD volume of the last full day before `as_of` (one request for all)."""
    day = last_full_day(as_of)
    grouped = source.grouped_daily(day)
    volumes = pd.Series(usd_volume(grouped).to_numpy(), index=grouped["ticker"]) if not grouped.empty else pd.Series(dtype=float)
    volumes = volumes[np.isfinite(volumes) & (volumes >= 0)]
    ranks = volumes.rank(method="min", ascending=False)
    ranked = 0
    with session_scope(engine) as session:
        session.execute(sa.update(Symbol).values(volume_24h_usd=None, volume_rank=None))
        for row in session.exec(select(Symbol)).all():
            if row.ticker in volumes.index:
                row.volume_24h_usd = Decimal(f"{min(volumes[row.ticker], 9.99e17):.2f}")
                row.volume_rank = int(ranks[row.ticker])
                row.last_updated = naive_utc_now()
                ranked += 1
        total = session.exec(select(sa.func.count()).select_from(Symbol)).one()
    log.info("ranked %d symbols by USD volume of %s (%d without data)", ranked, day, total - ranked)
    return RankResult(day=day, ranked=ranked, unranked=total - ranked)


def top_symbols(engine: Engine, n: int) -> list[str]:
    """The `n` active symbols with the best volume rank."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(Symbol.ticker)
            .where(Symbol.is_active.is_(True), Symbol.volume_rank.is_not(None))
            .order_by(Symbol.volume_rank, Symbol.ticker)
            .limit(n)
        ).all()
    return list(rows)
