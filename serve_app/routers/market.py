"""Symbols and candles: the search box and the chart's closed candles."""

from __future__ import annotations

from fastapi import APIRouter, Query

from predictions.market import candle_rows
from serve_app.dependencies import Market
from serve_app.errors import ERRORS
from serve_app.schemas import (
    PRINTABLE_PATTERN,
    TICKER_PATTERN,
    CandlesResponse,
    SearchResponse,
    SymbolOut,
    Timeframe,
)

router = APIRouter(tags=["market"], responses=ERRORS)


@router.get("/api/symbols/search", response_model=SearchResponse)
def search(market: Market, q: str = Query(..., max_length=50, pattern=PRINTABLE_PATTERN),
           limit: int = 10) -> SearchResponse:
    """Listed symbols whose ticker or name contains `q`: prefixes first, then by USD volume rank."""
    found = market.search(q, limit)
    return SearchResponse(query=q, results=[SymbolOut(ticker=s.ticker, name=s.name, base_currency=s.base_currency,
                                                      quote_currency=s.quote_currency, volume_rank=s.volume_rank)
                                            for s in found])


@router.get("/api/symbols/resolve", response_model=SymbolOut)
def resolve_symbol(market: Market, q: str = Query(..., min_length=1, max_length=50, pattern=PRINTABLE_PATTERN)) -> SymbolOut:
    """The one listed coin `q` names, written as a person writes it ("btc", "BTC-USD", "btc/usdt",
    "Bitcoin"); 404 `ambiguous_symbol` with `candidates` (beside `error`) where it fits several, `unknown_symbol`
    where none. What the page's Enter asks; every endpoint that takes a symbol reads it alike."""
    s = market.symbol(q)
    return SymbolOut(ticker=s.ticker, name=s.name, base_currency=s.base_currency, quote_currency=s.quote_currency,
                     volume_rank=s.volume_rank)


@router.get("/api/candles", response_model=CandlesResponse)
def candles(market: Market, symbol: str = Query(..., min_length=1, max_length=20, pattern=TICKER_PATTERN),
            timeframe: Timeframe = "1d", limit: int = 200) -> CandlesResponse:
    """The recent closed candles a forecast starts from (at most 500), as the forecast reads them."""
    found, frame = market.recent(symbol, timeframe, limit)
    return CandlesResponse.model_validate({"symbol": found.ticker, "timeframe": timeframe,
                                          "candles": candle_rows(frame)})
