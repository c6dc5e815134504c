"""Massive's crypto WebSocket through the official `massive` client's `WebSocketClient`: one
connection, per-second aggregates (`XAS.<pair>`) of the subscribed tickers.

The host comes from `MASSIVE_WS_BASE` (tests point it at a loopback server that speaks Massive's
auth, status and subscribe messages). When the connection drops, the client is started again
with growing pauses (1 s doubling to 30 s) and the viewers are told (`RECONNECTING`) until
aggregates flow again (`CONNECTED`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from urllib.parse import urlsplit

from massive import WebSocketClient
from massive.websocket.models import CurrencyAgg, Market

from clock import utc_now
from market_data.stream import CONNECTED, DISCONNECTED_TEXT, RECONNECTING, StatusSink, Tick, TickSink

log = logging.getLogger(__name__)

# quote currencies of Massive's crypto pairs, longest first (X:BTCUSDT is BTC-USDT, not BTCU-SDT)
QUOTES = ("USDT", "USDC", "USD", "EUR", "GBP", "JPY", "AUD", "CAD", "BTC", "ETH")
MAX_PAUSE_S = 30.0


def pair_of(ticker: str) -> str:
    """X:BTCUSD (the REST ticker) -> BTC-USD (the WebSocket pair)."""
    symbol = ticker.removeprefix("X:")
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return f"{symbol[: -len(quote)]}-{quote}"
    raise ValueError(f"cannot tell the quote currency of {ticker!r} for Massive's WebSocket")


class MassiveStream:
    name = "massive"

    def __init__(self, api_key: str, ws_base: str = "wss://socket.massive.com") -> None:
        parts = urlsplit(ws_base)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise ValueError(f"MASSIVE_WS_BASE={ws_base!r} is not a ws:// or wss:// address")
        self.api_key, self.host, self.secure = api_key, parts.netloc, parts.scheme == "wss"
        self._tickers: dict[str, str] = {}  # pair -> ticker
        self._client: WebSocketClient | None = None
        self.reconnects = 0

    def now(self) -> datetime:
        return utc_now()

    def _topics(self) -> list[str]:
        return [f"XAS.{pair}" for pair in self._tickers]

    def subscribe(self, ticker: str) -> None:
        pair = pair_of(ticker)
        self._tickers[pair] = ticker
        if self._client is not None:
            self._client.subscribe(f"XAS.{pair}")

    def unsubscribe(self, ticker: str) -> None:
        pair = pair_of(ticker)
        self._tickers.pop(pair, None)
        if self._client is not None:
            self._client.unsubscribe(f"XAS.{pair}")

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        pause = 1.0
        while True:
            flowing = False

            async def process(messages: list) -> None:
                nonlocal flowing, pause
                if not flowing:
                    flowing, pause = True, 1.0
                    on_status(CONNECTED, "live data connected")
                for m in messages:
                    if isinstance(m, CurrencyAgg) and m.pair in self._tickers and m.close is not None:
                        on_tick(Tick(self._tickers[m.pair], _ms(m.start_timestamp), float(m.open or m.close),
                                     float(m.high or m.close), float(m.low or m.close), float(m.close),
                                     float(m.volume or 0.0)))

            self._client = WebSocketClient(api_key=self.api_key, feed=self.host, market=Market.Crypto,
                                           secure=self.secure, max_reconnects=0, subscriptions=self._topics())
            try:
                await self._client.connect(process)
                reason = "the market-data stream closed"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the client raises what the connection died of
                reason = f"the market-data stream dropped ({type(exc).__name__})"
            log.warning("%s; reconnecting in %.0f s", reason, pause)
            self.reconnects += 1
            on_status(RECONNECTING, DISCONNECTED_TEXT)
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE_S)


def _ms(epoch_ms: int | None) -> datetime:
    return datetime.fromtimestamp((epoch_ms or 0) / 1000, tz=timezone.utc)
