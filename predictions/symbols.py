"""How a person writes a coin, read as a listed symbol: one resolution for the page's Enter, the
forecast, the candles, the live socket and every portfolio object that names a coin.

"btc", "BTC", "BTC-USD", "btc/usdt", "x:btcusd" and "X:BTCUSD" are one coin; so is its name
("Bitcoin"). Where the text is only part of a coin's ticker or name, the one coin it fits is it;
where it fits several, the answer lists them and resolves to none; nothing that does not resolve
is ever taken as a symbol.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlmodel import Session, col, select

from refusals import Refusal
from storage.schema import Symbol

QUOTES = ("USDT", "USDC", "BUSD", "USD")  # what people write after the coin; the market quotes it in USD
SEPARATORS = re.compile(r"[\s\-/_.:]+")
CANDIDATES = 6  # the most coins an ambiguous text lists


class UnknownSymbol(Refusal):
    """No listed coin, or more than one, is what the text names."""


def coin_of(text: str) -> str:
    """The coin in `text`, in capitals: the `X:` prefix, separators and a quote currency taken off."""
    upper = text.strip().upper()
    compact = SEPARATORS.sub("", upper[2:] if upper.startswith("X:") else upper)
    return next((compact[: -len(q)] for q in QUOTES if compact.endswith(q) and len(compact) > len(q)), compact)


def spellings(text: str) -> list[str]:
    """The tickers `text` may mean, the most literal first: as written, in capitals, and as the
    market's `X:<COIN>USD`."""
    written = text.strip()
    upper = written.upper()
    compact = SEPARATORS.sub("", upper[2:] if upper.startswith("X:") else upper)
    out: list[str] = []
    for ticker in (written, upper, f"X:{compact}", f"X:{coin_of(text)}USD"):
        if ticker and ticker not in out:
            out.append(ticker)
    return out


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def resolve(session: Session, text: str) -> Symbol:
    """The listed symbol `text` names (`spellings`, then its name, then the one coin it is part
    of); 404 `unknown_symbol` naming what to type, or `ambiguous_symbol` with the candidates."""
    tried = spellings(text)
    found = {s.ticker: s for s in session.exec(select(Symbol).where(col(Symbol.ticker).in_(tried))).all()}
    for ticker in tried:
        if ticker in found:
            return _listed(found[ticker])
    written = text.strip()
    named = session.exec(select(Symbol).where(sa.func.lower(Symbol.name) == written.lower(),
                                              Symbol.is_active.is_(True))
                         .order_by(Symbol.volume_rank)).first()
    if named is not None:
        return named
    coin = coin_of(written)
    part = sa.or_(sa.func.lower(Symbol.ticker).like(_like(coin), escape="\\"),
                  sa.func.lower(Symbol.name).like(_like(written), escape="\\"))
    fits = session.exec(select(Symbol).where(Symbol.is_active.is_(True), Symbol.volume_rank.is_not(None), part)
                        .order_by(Symbol.volume_rank).limit(CANDIDATES + 1)).all() if coin else []
    if len(fits) == 1:
        return fits[0]
    if fits:
        names = ", ".join(f"{s.ticker} ({s.name})" if s.name and s.name != s.ticker else s.ticker
                          for s in fits[:CANDIDATES])
        raise UnknownSymbol(404, "ambiguous_symbol", f"{written!r} could be {names}: pick one",
                            extra={"candidates": [s.ticker for s in fits[:CANDIDATES]]})
    raise UnknownSymbol(404, "unknown_symbol", f"no coin matches {written!r}: type its ticker (such as BTC) or its "
                        "name (such as Bitcoin)", extra={"candidates": []})


def _listed(symbol: Symbol) -> Symbol:
    if not symbol.is_active:
        raise UnknownSymbol(404, "inactive_symbol", f"{symbol.ticker} is no longer listed")
    return symbol
