"""Live candles over a WebSocket: `/api/ws/candles?symbol=&timeframe=`.

The server sends the upstream's state (`{"type": "status"}`), the forming candle as it moves
(`{"type": "candle", ..., "closed": false}`, at most a few a second) and each candle once more
with `closed: true` when it closes. A bad symbol or timeframe, too many sockets or no live market
get `{"type": "error", "error": {code, message}}` and a close. The client may send
`{"type": "ping"}` (answered `pong`); anything else is answered with an error and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from accounts.errors import AccountError
from market_data.source import MarketDataError
from market_data.timeframes import spec
from refusals import Refusal
from serve_app.dependencies import Accounts, Live, Market, session_token
from serve_app.schemas import TICKER_PATTERN
from streaming.admission import Holder
from streaming.outbox import LiveStats, Message, Outbox, Overflow, encoded

router = APIRouter(tags=["live"])
log = logging.getLogger("serve_app.live")

POLICY, UNAVAILABLE, TRY_LATER = 1008, 1011, 1013  # WebSocket close codes (RFC 6455, IANA)
HEARTBEAT_S = 20.0  # a quiet socket still carries a message this often (proxies' idle timeouts)
CLIENT_MESSAGES = (20, 10.0)  # at most this many client messages per this many seconds
SEND_TIMEOUT_S = 30.0  # a client that has not taken a message in this long has stopped reading
REFUSE_TIMEOUT_S = 5.0


class BadInput(Refusal):
    pass


def _error(code: str, message: str) -> Message:
    return {"type": "error", "error": {"code": code, "message": message}}


async def _refuse(websocket: WebSocket, code: str, message: str, close_code: int) -> None:
    """Say why, then close; neither waits long for a client that is gone or stopped reading."""
    for step in (websocket.send_json(_error(code, message)), websocket.close(close_code)):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(step, REFUSE_TIMEOUT_S)


def _parse(websocket: WebSocket) -> tuple[str, str]:
    symbol = websocket.query_params.get("symbol", "")
    timeframe = websocket.query_params.get("timeframe", "")
    if not symbol or len(symbol) > 20 or not re.fullmatch(TICKER_PATTERN, symbol):
        raise BadInput(400, "bad_symbol", f"symbol must be a ticker such as X:BTCUSD, got {symbol[:40]!r}")
    try:
        spec(timeframe)
    except ValueError as exc:
        raise BadInput(400, "bad_timeframe", str(exc)) from None
    return symbol, timeframe


async def _holder(websocket: WebSocket, accounts: Accounts) -> Holder:
    address = websocket.client.host if websocket.client else "unknown"
    token = session_token(websocket)
    if token is None:
        return Holder(address)
    account = await asyncio.to_thread(accounts.authenticate, token)
    return Holder(address, str(account.id))


@router.websocket("/api/ws/candles")
async def live_candles(websocket: WebSocket, live: Live, market: Market, accounts: Accounts) -> None:
    await websocket.accept()
    if live is None:
        return await _refuse(websocket, "no_live_market", "this service has no live market: a CSV export is live only "
                             "when replayed (SERVE_AS_OF)", UNAVAILABLE)
    try:
        ticker, timeframe = _parse(websocket)
        holder = await _holder(websocket, accounts)
        ticker = (await asyncio.to_thread(market.symbol, ticker)).ticker  # as written, resolved to the listed one
        live.admission.admit(holder)
    except (Refusal, AccountError) as exc:
        close = TRY_LATER if exc.status == 429 else POLICY
        return await _refuse(websocket, exc.code, exc.message, close)
    outbox = Outbox(live.hub.stats)
    joined = False
    try:
        try:
            await live.hub.join(ticker, timeframe, outbox)
            joined = True
        except (MarketDataError, OSError, Refusal) as exc:
            log.warning("live %s %s: no starting candle: %s", ticker, timeframe, exc)
            return await _refuse(websocket, "market_unavailable",
                                 f"live candles of {ticker} are unavailable right now; please retry in a minute",
                                 UNAVAILABLE)
        await _serve(websocket, outbox, live.hub.stats)
    finally:
        if joined:
            live.hub.leave(ticker, timeframe, outbox)
        live.admission.release(holder)


async def _serve(websocket: WebSocket, outbox: Outbox, stats: LiveStats) -> None:
    sender = asyncio.ensure_future(_send(websocket, outbox, stats))
    receiver = asyncio.ensure_future(_receive(websocket, outbox))
    done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    if pending:  # not gather: a cancelled task's CancelledError would surface here as this one's own
        await asyncio.wait(pending)
    for task in done:
        exc = task.exception()
        if isinstance(exc, Overflow):
            log.info("live socket cut off: %s", exc)
            await _refuse(websocket, "too_slow", "this connection stopped reading; reconnect to continue", POLICY)
        elif isinstance(exc, _TooChatty):
            await _refuse(websocket, "too_many_messages", str(exc), POLICY)
        elif exc is not None and not isinstance(exc, (WebSocketDisconnect, RuntimeError)):
            log.warning("live socket failed: %r", exc)


async def _send(websocket: WebSocket, outbox: Outbox, stats: LiveStats) -> None:
    """The wait and the send are guarded by timers that cancel this task (`asyncio.timeout`, a
    loop timer), not by `wait_for`, which on Python 3.11 wraps each wait in a task of its own: a
    thousand sockets send a thousand messages a second."""
    loop = asyncio.get_running_loop()
    sender = asyncio.current_task()
    assert sender is not None
    stalled = False

    def stall() -> None:
        nonlocal stalled
        stalled = True
        sender.cancel()

    while True:
        try:
            async with asyncio.timeout(HEARTBEAT_S):
                message = await outbox.get()
        except TimeoutError:
            message = {"type": "heartbeat"}
        watchdog = loop.call_later(SEND_TIMEOUT_S, stall)
        try:
            await websocket.send_text(encoded(message))
        except asyncio.CancelledError:
            if stalled:  # its outbox stayed bounded meanwhile: forming updates replace each other
                raise Overflow(f"a message waited {SEND_TIMEOUT_S:g} s for a reader that stopped reading") from None
            raise
        finally:
            watchdog.cancel()
        stats.sent += 1


class _TooChatty(Exception):
    pass


async def _receive(websocket: WebSocket, outbox: Outbox) -> None:
    """Pings are answered; the socket carries nothing else from the client."""
    limit, window = CLIENT_MESSAGES
    loop = asyncio.get_running_loop()
    times: list[float] = []
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text") or ""
        now = loop.time()
        times = [t for t in times if now - t < window] + [now]
        if len(times) > limit:
            raise _TooChatty(f"at most {limit} messages per {window:g} s; this socket carries pings only")
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        if kind == "ping":
            outbox.put({"type": "pong"})
        else:
            outbox.put(_error("unsupported_message", 'this socket accepts only {"type": "ping"}; the candles come '
                                                     "by themselves"))
