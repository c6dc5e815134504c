"""Live candles: the forming-candle rules, the per-socket outbox, the hub's one upstream
subscription per symbol, the WebSocket route's messages and refusals, the CSV replay, and the
official Massive client against a loopback socket that speaks Massive's protocol."""

from __future__ import annotations

import asyncio
import contextvars
import json
import queue
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest
from starlette.websockets import WebSocketDisconnect

from market_data.csv_source import CsvSource
from market_data.massive_stream import MassiveStream, pair_of
from market_data.replay_stream import ReplayStream
from market_data.stream import CONNECTED, DISCONNECTED_TEXT, RECONNECTING, StatusSink, Tick, TickSink
from streaming.admission import Admission
from streaming.candles import Candle, FormingCandle
from streaming.hub import LiveHub
from streaming.live import LiveMarket
from streaming.outbox import LiveStats, Outbox, Overflow
from streaming.seed import seed_from
from tests.conftest import HOURLY_DATA, START, app_for, bearer, register_and_login, run_async, serve_world
from tests.fake_massive_socket import FakeMassiveSocket

T0 = datetime(2026, 3, 10, 22, 0, tzinfo=timezone.utc)


def tick(at: datetime, price: float, ticker: str = "X:AUSD", volume: float = 1.0) -> Tick:
    return Tick(ticker, at, price, price, price, price, volume)


# -- the forming candle -------------------------------------------------------------------------
def test_a_forming_candle_opens_at_the_last_close_and_follows_the_ticks() -> None:
    candle = FormingCandle.start("1h", T0 + timedelta(minutes=5), last_close=100.0)
    assert candle.current == Candle(T0, 100.0, 100.0, 100.0, 100.0, 0.0)
    assert candle.apply(tick(T0 + timedelta(minutes=6), 103.0)) == []
    assert candle.apply(tick(T0 + timedelta(minutes=7), 98.0, volume=2.0)) == []
    assert candle.current == Candle(T0, 100.0, 103.0, 98.0, 98.0, 3.0)
    # a tick of the next hour closes this candle; the next opens at its close
    closed = candle.apply(tick(T0 + timedelta(minutes=61), 99.0))
    assert closed == [Candle(T0, 100.0, 103.0, 98.0, 98.0, 3.0)]
    assert candle.current == Candle(T0 + timedelta(hours=1), 98.0, 99.0, 98.0, 99.0, 1.0)
    # a late aggregate of the closed hour changes nothing
    assert candle.apply(tick(T0 + timedelta(minutes=59), 500.0)) == []
    assert candle.current.high == 99.0


def test_the_clock_closes_a_quiet_candle_and_a_long_silence_sends_only_the_last_ones() -> None:
    candle = FormingCandle.start("1h", T0, last_close=10.0)
    assert candle.advance(T0 + timedelta(minutes=59, seconds=59)) == []
    closed = candle.advance(T0 + timedelta(hours=1))
    assert [c.opened_at for c in closed] == [T0] and candle.current.opened_at == T0 + timedelta(hours=1)
    closed = candle.advance(T0 + timedelta(days=3, minutes=1))
    assert len(closed) <= 4 and closed[-1].opened_at == T0 + timedelta(days=3) - timedelta(hours=1)
    assert candle.current == Candle(T0 + timedelta(days=3), 10.0, 10.0, 10.0, 10.0, 0.0)


def test_a_daily_candle_starts_from_the_hours_the_source_already_closed() -> None:
    day = T0.replace(hour=0)
    partial = Candle(day, 50.0, 60.0, 45.0, 55.0, 10.0)
    candle = FormingCandle.start("1d", T0, last_close=50.0, partial=partial)
    assert candle.current == partial
    with pytest.raises(ValueError, match="timeframe '2h'"):
        FormingCandle.start("2h", T0, last_close=1.0)


# -- a socket's outbox ------------------------------------------------------------------------------
def test_the_outbox_replaces_unsent_forming_updates_and_never_drops_a_closed_candle() -> None:
    stats = LiveStats()
    outbox = Outbox(stats, max_ordered=3)
    outbox.put_forming({"n": 1})
    outbox.put_forming({"n": 2})
    outbox.put({"closed": True, "n": 3})  # retires the forming update of the candle it closes
    outbox.put_forming({"n": 4})
    assert stats.dropped == 2

    async def drain() -> list[Any]:
        return [await outbox.get() for _ in range(2)]

    assert run_async(drain()) == [{"closed": True, "n": 3}, {"n": 4}]
    for n in range(4):
        outbox.put({"closed": True, "n": n})
    with pytest.raises(Overflow):
        run_async(outbox.get())


# -- the hub, on a stream the test drives --------------------------------------------------------
class PushedStream:
    """A market stream the test pushes ticks into from any thread."""

    name = "pushed"

    def __init__(self, now: datetime) -> None:
        self.clock = now
        self.subscribed: list[str] = []
        self.calls: list[str] = []
        self.ticks: queue.Queue[Tick | tuple[str, str]] = queue.Queue()

    def now(self) -> datetime:
        return self.clock

    def subscribe(self, ticker: str) -> None:
        self.subscribed.append(ticker)
        self.calls.append(f"+{ticker}")

    def unsubscribe(self, ticker: str) -> None:
        self.subscribed.remove(ticker)
        self.calls.append(f"-{ticker}")

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        on_status(CONNECTED, "connected")
        while True:
            try:
                item = self.ticks.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.01)
                continue
            if isinstance(item, Tick):
                on_tick(item)
            else:
                on_status(*item)


def flat_seed(ticker: str, timeframe: str, now: datetime) -> tuple[float, Candle | None]:
    return 100.0, None


def test_a_tick_goes_out_at_once_and_a_burst_within_flush_s_goes_out_once_as_its_last_state() -> None:
    async def scenario() -> None:
        stream = PushedStream(T0 + timedelta(minutes=1))
        flush_s = 2.0  # long beside a loaded machine's delays: the bounds below are fractions of it
        hub = LiveHub(stream, flat_seed, linger_s=0.2, flush_s=flush_s)
        box = Outbox(hub.stats)
        await hub.join("X:AUSD", "1h", box)
        assert (await box.get())["type"] == "status" and (await box.get())["candle"]["close"] == 100.0
        await asyncio.sleep(flush_s + 0.1)  # the join's own update counts as nothing sent by a tick
        t0 = time.monotonic()
        stream.ticks.put(tick(T0 + timedelta(minutes=2), 101.0))
        assert (await asyncio.wait_for(box.get(), 10))["candle"]["close"] == 101.0
        assert time.monotonic() - t0 < flush_s / 2  # not held for flush_s
        stream.ticks.put(tick(T0 + timedelta(minutes=3), 102.0))
        stream.ticks.put(tick(T0 + timedelta(minutes=4), 103.0))
        burst = await asyncio.wait_for(box.get(), 10 + flush_s)
        assert burst["candle"]["close"] == 103.0 and burst["candle"]["high"] == 103.0  # one message, the last state
        assert time.monotonic() - t0 > 0.7 * flush_s and box.pending() == 0
        await hub.close()

    run_async(scenario())


def test_viewers_of_a_symbol_share_one_upstream_subscription_that_ends_after_the_last_leaves() -> None:
    async def scenario() -> None:
        stream = PushedStream(T0)
        hub = LiveHub(stream, flat_seed, linger_s=0.2, flush_s=0.02)
        boxes = [Outbox(hub.stats) for _ in range(3)]
        await hub.join("X:AUSD", "1h", boxes[0])
        await hub.join("X:AUSD", "1d", boxes[1])
        await hub.join("X:BUSD", "1h", boxes[2])
        assert stream.calls == ["+X:AUSD", "+X:BUSD"] and hub.stats.subscriptions == 2
        stream.ticks.put(tick(T0 + timedelta(minutes=1), 101.0))
        got = [await boxes[0].get() for _ in range(2)]
        assert got[0]["type"] == "status" and got[1]["candle"]["close"] == 100.0
        moved = await asyncio.wait_for(boxes[0].get(), 1)
        assert moved["candle"]["close"] == 101.0 and moved["closed"] is False
        hub.leave("X:AUSD", "1h", boxes[0])
        await asyncio.sleep(0.3)
        assert stream.calls == ["+X:AUSD", "+X:BUSD"]  # a 1d viewer still watches X:AUSD
        hub.leave("X:AUSD", "1d", boxes[1])
        await hub.join("X:AUSD", "1h", boxes[0])  # back within the linger: no churn upstream
        hub.leave("X:AUSD", "1h", boxes[0])
        await asyncio.sleep(0.3)
        assert stream.calls == ["+X:AUSD", "+X:BUSD", "-X:AUSD"] and hub.stats.subscriptions == 1
        stream.ticks.put((RECONNECTING, DISCONNECTED_TEXT))
        while (m := await asyncio.wait_for(boxes[2].get(), 1))["type"] != "status" or m["status"] != RECONNECTING:
            pass
        assert hub.stats.reconnects == 1 and hub.stats.viewers == 1
        await hub.close()

    run_async(scenario())


# -- the WebSocket route -----------------------------------------------------------------------------
def _live_client(world: dict[str, Any], stream: PushedStream, max_sockets: int = 20) -> Any:
    from fastapi.testclient import TestClient

    hub = LiveHub(stream, seed_from(world["market"]), linger_s=0.1, flush_s=0.02)
    return TestClient(app_for(world, live_market=LiveMarket(hub, Admission(max_sockets))))


def _next(ws: Any, kind: str = "candle") -> dict[str, Any]:
    while True:
        message = ws.receive_json()
        if message["type"] == kind:
            return message


def _first(ws: Any, wanted: Any, limit: int = 20) -> dict[str, Any]:
    """The first candle message `wanted` accepts, within `limit` candle messages."""
    for _ in range(limit):
        if wanted(message := _next(ws)):
            return message
    raise AssertionError(f"no wanted candle message in {limit}; the last was {message}")


def test_the_socket_sends_the_forming_candle_from_the_charts_last_close_then_its_close(world: dict[str, Any]) -> None:
    stream = PushedStream(START + timedelta(minutes=10))
    ticker = world["tickers"][0]
    with _live_client(world, stream) as client:
        chart = client.get("/api/candles", params={"symbol": ticker, "timeframe": "1h", "limit": 1}).json()
        last_close = chart["candles"][-1]["close"]
        with client.websocket_connect(f"/api/ws/candles?symbol={ticker}&timeframe=1h") as ws:
            assert _next(ws, "status")["status"] == CONNECTED
            first = _next(ws)
            assert first["symbol"] == ticker and first["timeframe"] == "1h" and first["closed"] is False
            assert first["candle"]["open"] == pytest.approx(last_close)
            assert first["candle"]["timestamp"] == START.isoformat()
            stream.ticks.put(tick(START + timedelta(minutes=11), last_close * 1.01, ticker))
            # forming updates are snapshots: the seed's may be sent again before the tick's lands
            moved = _first(ws, lambda m: m["candle"]["close"] != last_close)
            assert moved["candle"]["close"] == pytest.approx(last_close * 1.01) and moved["closed"] is False
            stream.ticks.put(tick(START + timedelta(minutes=61), last_close * 1.02, ticker))
            closed = _first(ws, lambda m: m["closed"] or m["candle"]["timestamp"] != first["candle"]["timestamp"])
            assert closed["closed"] is True and closed["candle"]["close"] == pytest.approx(last_close * 1.01)
            following = _next(ws)
            assert following["candle"]["open"] == pytest.approx(last_close * 1.01)
            assert following["candle"]["timestamp"] == (START + timedelta(hours=1)).isoformat()
            ws.send_json({"type": "ping"})
            assert _next(ws, "pong") == {"type": "pong"}
            ws.send_text("buy everything")
            refused = _next(ws, "error")
            assert refused["error"]["code"] == "unsupported_message"
            ws.send_json({"type": "ping"})  # still open after a refused message
            assert _next(ws, "pong") == {"type": "pong"}
        deadline = time.time() + 5
        while stream.subscribed and time.time() < deadline:
            time.sleep(0.05)
        assert stream.calls == [f"+{ticker}", f"-{ticker}"]


def test_a_quiet_socket_carries_heartbeats_and_still_answers(world: dict[str, Any], monkeypatch) -> None:
    """No tick for a while: the socket sends a heartbeat each HEARTBEAT_S (proxies close idle
    sockets), and a message after one still goes through."""
    import serve_app.routers.live as live

    monkeypatch.setattr(live, "HEARTBEAT_S", 0.3)
    stream = PushedStream(START + timedelta(minutes=10))
    ticker = world["tickers"][0]
    with _live_client(world, stream) as client:
        with client.websocket_connect(f"/api/ws/candles?symbol={ticker}&timeframe=1h") as ws:
            _next(ws, "candle")
            started = time.monotonic()
            beats = [_next(ws, "heartbeat") for _ in range(3)]
            assert beats == [{"type": "heartbeat"}] * 3 and time.monotonic() - started >= 0.6
            ws.send_json({"type": "ping"})
            assert _next(ws, "pong") == {"type": "pong"}


@pytest.mark.parametrize("query,code", [
    ("symbol=X:NOSUCHUSD&timeframe=1h", "unknown_symbol"),
    ("symbol=X:AUSD&timeframe=2h", "bad_timeframe"),
    ("timeframe=1h", "bad_symbol"),
    ("symbol=%3Cscript%3E&timeframe=1d", "bad_symbol"),
])
def test_bad_input_gets_an_error_message_and_a_close(world: dict[str, Any], query: str, code: str) -> None:
    stream = PushedStream(START)
    with _live_client(world, stream) as client, client.websocket_connect(f"/api/ws/candles?{query}") as ws:
        message = ws.receive_json()
        assert message["type"] == "error" and message["error"]["code"] == code, message
        assert message["error"]["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008
    assert stream.calls == []


def test_sockets_per_address_and_per_user_are_limited(world: dict[str, Any]) -> None:
    stream = PushedStream(START)
    ticker = world["tickers"][0]
    url = f"/api/ws/candles?symbol={ticker}&timeframe=1d"
    with _live_client(world, stream, max_sockets=2) as client:
        token = register_and_login(client, "live@example.com")
        with client.websocket_connect(url) as a, client.websocket_connect(url, headers=bearer(token)) as b:
            _next(a), _next(b)
            with client.websocket_connect(url) as c:
                refused = c.receive_json()
                assert refused["error"]["code"] == "too_many_sockets" and "address" in refused["error"]["message"]
                with pytest.raises(WebSocketDisconnect) as closed:
                    c.receive_json()
                assert closed.value.code == 1013
        with client.websocket_connect(url) as again:  # the closed ones were counted out
            assert _next(again)["closed"] is False
        with client.websocket_connect(url, headers={"Authorization": "Bearer not-a-session"}) as bad:
            assert bad.receive_json()["error"]["code"] == "invalid_session"


def test_a_client_that_never_reads_is_cut_off_and_its_outbox_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its sends block (a full TCP window): updates meanwhile replace each other, and once a
    message waited SEND_TIMEOUT_S the socket is told `too_slow` and closed, neither step waiting
    on the client for long."""
    from serve_app.routers import live as route

    monkeypatch.setattr(route, "SEND_TIMEOUT_S", 0.3)
    monkeypatch.setattr(route, "REFUSE_TIMEOUT_S", 0.1)

    class NeverReads:
        def __init__(self) -> None:
            self.attempts: list[dict[str, Any]] = []

        async def send_text(self, text: str) -> None:
            self.attempts.append(json.loads(text))
            if len(self.attempts) > 1:
                await asyncio.Event().wait()  # the client's window is full: never returns

        async def receive(self) -> dict[str, Any]:
            await asyncio.Event().wait()
            return {}

        async def send_json(self, message: dict[str, Any]) -> None:
            await self.send_text(json.dumps(message))

        async def close(self, code: int) -> None:
            await asyncio.Event().wait()

    async def scenario() -> None:
        stats = LiveStats()
        outbox, socket = Outbox(stats), NeverReads()
        serving = asyncio.ensure_future(route._serve(socket, outbox, stats))  # type: ignore[arg-type]
        for n in range(1000):
            outbox.put_forming({"type": "candle", "closed": False, "n": n})
            if n % 100 == 0:
                outbox.put({"type": "candle", "closed": True, "n": n})
            await asyncio.sleep(0)
        assert outbox.pending() <= 11 and stats.dropped >= 900  # bounded: one forming update, the closed ones
        await asyncio.wait_for(serving, 2)  # cut off, though the client took nothing
        assert socket.attempts[-1]["error"]["code"] == "too_slow"

    run_async(scenario())


def test_without_a_live_market_the_socket_says_so(world: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    ticker = world["tickers"][0]
    with TestClient(app_for(world)) as client, \
            client.websocket_connect(f"/api/ws/candles?symbol={ticker}&timeframe=1d") as ws:
        assert ws.receive_json()["error"]["code"] == "no_live_market"


# -- the CSV replay -----------------------------------------------------------------------------------
def test_a_csv_export_replays_from_serve_as_of_at_its_speed() -> None:
    source = CsvSource(HOURLY_DATA)
    ticker = source.list_tickers()[0].ticker
    start = datetime(2023, 3, 1, 12, 20, tzinfo=timezone.utc)
    wall = [0.0]
    stream = ReplayStream(source, start, speed=3600.0, wall=lambda: wall[0])
    stream.subscribe(ticker)
    got: list[Tick] = []

    async def run() -> None:
        task = asyncio.ensure_future(stream.run(got.append, lambda *_: None))
        for _ in range(6):  # six seconds of wall time: six replayed hours
            wall[0] += 1.0
            await asyncio.sleep(0.05)
        for _ in range(200):  # a loaded machine: the replay catches up with the wall within seconds
            if got and got[-1].at > start + timedelta(hours=6, minutes=-30):
                break
            await asyncio.sleep(0.05)
        task.cancel()

    run_async(run())
    assert stream.now() == start + timedelta(hours=6)
    # the hour forming at `start` from its beginning (what of it happened arrives at once), then on
    assert got and all(start.replace(minute=0) <= t.at <= start + timedelta(hours=6) for t in got)
    assert got[0].at == start.replace(minute=0)
    assert [t.at for t in got] == sorted(t.at for t in got)
    hours = source.aggregates(ticker, "1h", start, start + timedelta(hours=6))
    closes = {pd.Timestamp(t.at).floor("1h"): t.close for t in got}  # the last tick of each hour: its close
    for row in hours.itertuples():
        if pd.Timestamp(row.timestamp) + pd.Timedelta(minutes=45) <= start + timedelta(hours=6) \
                and pd.Timestamp(row.timestamp) > start:
            assert closes[pd.Timestamp(row.timestamp)] == pytest.approx(row.close)


def test_a_csv_export_served_as_of_a_past_moment_moves_on_the_socket(world: dict[str, Any]) -> None:
    """The whole chain a demo on historical data runs: settings (csv:, SERVE_AS_OF, the replay
    speed) -> the replay stream -> the hub -> the socket; the replayed hour closes at the
    export's close."""
    from fastapi.testclient import TestClient

    from config import load_settings
    from serve_app.wiring import live_market
    from storage.db import session_scope
    from storage.schema import Symbol

    source = CsvSource(HOURLY_DATA)
    ticker = source.list_tickers()[0].ticker
    with session_scope(world["engine"]) as s:
        s.add(Symbol(ticker=ticker, name=ticker, volume_rank=99))
    settings = load_settings({"MARKET_SOURCE": f"csv:{HOURLY_DATA}", "SERVE_AS_OF": "2023-03-01T12:50:00",
                              "LIVE_REPLAY_SPEED": "600"})  # ten replayed minutes a second
    market = live_market(settings, source)
    assert market is not None and isinstance(market.hub.stream, ReplayStream)
    noon = datetime(2023, 3, 1, 12, tzinfo=timezone.utc)
    hour = source.aggregates(ticker, "1h", noon, noon + timedelta(minutes=59)).iloc[0]
    with TestClient(app_for(world, live_market=market)) as client, \
            client.websocket_connect(f"/api/ws/candles?symbol={ticker}&timeframe=1h") as ws:
        first = _next(ws)
        assert first["candle"]["timestamp"] == noon.isoformat() and first["closed"] is False
        closed = _first(ws, lambda m: m["closed"])  # 12:50 -> 13:00 replayed in about a second
        assert closed["candle"]["timestamp"] == noon.isoformat()
        assert closed["candle"]["close"] == pytest.approx(float(hour["close"]))
        following = _next(ws)
        assert following["candle"]["timestamp"] == (noon + timedelta(hours=1)).isoformat()


# -- Massive's socket through the official client ------------------------------------------------------
def test_the_official_client_authenticates_subscribes_and_resumes_after_a_drop() -> None:
    import websockets

    assert pair_of("X:BTCUSD") == "BTC-USD" and pair_of("X:ETHUSDT") == "ETH-USDT"
    server = FakeMassiveSocket()
    ticks: list[Tick] = []
    states: list[str] = []

    async def scenario() -> None:
        async with websockets.serve(server.handler, "127.0.0.1", 0) as ws_server:
            port = ws_server.sockets[0].getsockname()[1]
            stream = MassiveStream("test-key", f"ws://127.0.0.1:{port}")
            stream.subscribe("X:BTCUSD")
            task = asyncio.ensure_future(stream.run(ticks.append, lambda state, _text: states.append(state)))

            async def until(check: Any, seconds: float = 10) -> None:
                deadline = time.monotonic() + seconds
                while not check():
                    assert time.monotonic() < deadline, (states, len(ticks), server.subscriptions)
                    await asyncio.sleep(0.02)

            await until(lambda: len(ticks) >= 3)
            assert states == [CONNECTED] and server.subscriptions == ["XAS.BTC-USD"]
            assert {t.ticker for t in ticks} == {"X:BTCUSD"} and ticks[-1].close > ticks[0].close
            stream.subscribe("X:ETHUSD")
            await until(lambda: any(t.ticker == "X:ETHUSD" for t in ticks))
            server.drop()
            await until(lambda: states[-1] == CONNECTED and RECONNECTING in states)
            seen = len(ticks)
            await until(lambda: len(ticks) > seen + 2)
            assert server.connections == 2 and stream.reconnects == 1
            assert sorted(server.subscriptions[2:]) == ["XAS.BTC-USD", "XAS.ETH-USD"]  # resubscribed
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run_async(scenario())


def test_a_live_stream_runs_while_the_server_thread_serves(world: dict[str, Any]) -> None:
    """The hub's tasks live in the app's event loop, not the test's: a tick pushed from another
    thread reaches the socket."""
    stream = PushedStream(START + timedelta(minutes=1))
    ticker = world["tickers"][1]
    with _live_client(world, stream) as client, \
            client.websocket_connect(f"/api/ws/candles?symbol={ticker}&timeframe=1d") as ws:
        first = _next(ws)
        threading.Thread(target=lambda: stream.ticks.put(tick(START + timedelta(minutes=2), 1e6, ticker))).start()
        while (moved := _next(ws))["candle"]["high"] != 1e6:
            assert moved["candle"] == first["candle"]  # the same candle again until the tick
        assert moved["candle"]["open"] == first["candle"]["open"] and moved["candle"]["close"] == 1e6


# -- the page, in Debian's chromium -----------------------------------------------------------------------
def test_the_page_moves_its_last_candle_live_and_says_when_the_upstream_drops(world: dict[str, Any],
                                                                              browser: Any) -> None:
    """The page opens on the top coin with its live candle; a tick moves the last candle without a
    reload; an upstream drop shows the banner and the chart moves again once it is back; a closed
    candle after a forecast says the forecast is one candle old."""
    stream = PushedStream(START + timedelta(minutes=10))
    hub = LiveHub(stream, seed_from(world["market"]), linger_s=0.1, flush_s=0.05)
    top = world["tickers"][0]
    with serve_world(world, LiveMarket(hub, Admission(20))) as base:
        world["clock"].now = START + timedelta(minutes=10)  # the market's time: candles are fresh
        page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)  # its probes evaluate JavaScript
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(base + "/")
        page.wait_for_function("document.querySelector('#live').dataset.state === 'on'", timeout=20_000)
        assert page.input_value("#symbol") == top  # the top coin by volume, with nothing spent
        assert page.is_hidden("#mine")  # nobody signed in: no watchlist or alert controls
        first = float(page.get_attribute("#chart", "data-live-close"))

        def push(price: float, minutes: int) -> None:
            stream.ticks.put(tick(START + timedelta(minutes=minutes), price, top))

        push(first * 1.05, 12)
        page.wait_for_function(f"Number(document.querySelector('#chart').dataset.liveClose) > {first * 1.04}",
                               timeout=10_000)
        stream.ticks.put((RECONNECTING, DISCONNECTED_TEXT))
        page.wait_for_selector("#live-banner:not([hidden])", timeout=10_000)
        assert "Live data disconnected. Reconnecting..." in page.text_content("#live-banner")
        stream.ticks.put((CONNECTED, "live data connected"))
        push(first * 0.9, 13)
        page.wait_for_function(f"Number(document.querySelector('#chart').dataset.liveClose) < {first * 0.95}",
                               timeout=10_000)
        assert page.is_hidden("#live-banner")
        # a forecast, then its first candle closes: the page offers a fresh one
        page.click("#go")
        page.wait_for_selector("#steps tbody tr >> nth=29", timeout=60_000)
        assert page.is_hidden("#forecast-old")
        push(first, 130)  # the next day: the daily candle the forecast started from closes
        page.wait_for_selector("#forecast-old:not([hidden])", timeout=10_000)
        page.click("#forecast-refresh")
        page.wait_for_selector("#forecast-old", state="hidden", timeout=30_000)
        assert problems == []
        page.close()


# -- one upstream for the cluster: the relay and two replicas' hubs ------------------------------------
def test_two_replicas_share_one_upstream_subscription_through_the_relay() -> None:
    """Two API replicas (two hubs on relayed streams) watching one symbol: one subscription
    upstream; it ends after both leave; a replica that stops polling is forgotten; a relay that
    cannot be reached is reported as reconnecting and resumed."""
    from streaming.relay import Relay, RelayedStream

    async def scenario() -> None:
        upstream = PushedStream(T0)
        clock = [0.0]
        relay = Relay(upstream, linger_s=0.0, lease_s=5.0, clock=lambda: clock[0] + time.monotonic())
        broken = [False]

        def poller(holder: str) -> Any:
            async def poll(tickers: list[str], cursor: int) -> Any:
                if broken[0]:
                    raise ConnectionError("relay replica gone")
                return await relay.poll(holder, tickers, cursor, wait_s=0.2)
            return poll

        hubs = [LiveHub(RelayedStream(poller(name), retry_s=0.05), flat_seed, linger_s=0.05, flush_s=0.02)
                for name in ("a", "b")]
        boxes = [Outbox(hub.stats) for hub in hubs]
        for hub, box in zip(hubs, boxes):
            await hub.join("X:AUSD", "1h", box)

        async def until(check: Any) -> None:
            deadline = time.monotonic() + 5
            while not check():
                assert time.monotonic() < deadline, upstream.calls
                await asyncio.sleep(0.02)

        await until(lambda: upstream.subscribed == ["X:AUSD"])
        upstream.ticks.put(tick(T0 + timedelta(minutes=1), 120.0))
        for box in boxes:  # both replicas' viewers get the one upstream tick
            while (await asyncio.wait_for(box.get(), 2)).get("candle", {}).get("close") != 120.0:
                pass
        assert upstream.calls == ["+X:AUSD"]
        hubs[1].leave("X:AUSD", "1h", boxes[1])
        await asyncio.sleep(0.5)
        assert upstream.subscribed == ["X:AUSD"]  # replica a still watches
        hubs[0].leave("X:AUSD", "1h", boxes[0])
        await until(lambda: upstream.subscribed == [])
        assert upstream.calls == ["+X:AUSD", "-X:AUSD"]
        # the relay unreachable: the viewers are told, and it resumes
        box = Outbox(hubs[0].stats)
        await hubs[0].join("X:BUSD", "1h", box)
        await until(lambda: upstream.subscribed == ["X:BUSD"])
        broken[0] = True
        while (m := await asyncio.wait_for(box.get(), 2))["type"] != "status" or m["status"] != RECONNECTING:
            pass
        broken[0] = False
        while (m := await asyncio.wait_for(box.get(), 2))["type"] != "status" or m["status"] != CONNECTED:
            pass
        upstream.ticks.put(tick(T0 + timedelta(minutes=2), 7.0, "X:BUSD"))
        while (await asyncio.wait_for(box.get(), 2)).get("candle", {}).get("close") != 7.0:
            pass
        # a replica that dies without leaving: its lease runs out and the symbol is dropped
        await hubs[0].close()
        clock[0] += 10.0
        await relay.poll("c", [], -1, wait_s=0.0)
        assert upstream.subscribed == [] and relay.subscriptions() == 0
        await hubs[1].close()
        await relay.close()

    run_async(scenario())


def test_a_replica_keeps_polling_the_relay_through_a_cancelled_or_unanswered_call() -> None:
    """Ray Serve raises a bare CancelledError from a call it cancelled downstream (and cancels the
    calls a request made when that request ends); a poll can also go unanswered. Neither ends the
    replica's relayed stream: its figures follow the relay instead of freezing at their last value."""
    from streaming.relay import Relay, RelayedStream

    request = contextvars.ContextVar("request", default="none")

    async def scenario() -> None:
        upstream = PushedStream(T0)
        relay = Relay(upstream, linger_s=0.0)
        trouble: list[str] = []
        contexts: set[str] = set()

        async def poll(tickers: list[str], cursor: int) -> Any:
            contexts.add(request.get())
            if trouble:
                what = trouble.pop(0)
                if what == "cancelled":
                    raise asyncio.CancelledError()
                await asyncio.sleep(3600)  # never answers
            return await relay.poll("a", tickers, cursor, wait_s=0.05)

        relayed = RelayedStream(poll, retry_s=0.01, timeout_s=0.3)
        hub = LiveHub(relayed, flat_seed, linger_s=0.0, flush_s=0.02)

        async def viewer() -> Outbox:
            request.set("a viewer's request")  # what Ray Serve sets for the request's own calls
            box = Outbox(hub.stats)
            await hub.join("X:AUSD", "1h", box)
            return box

        box = await asyncio.ensure_future(viewer())  # the first viewer starts the stream
        deadline = time.monotonic() + 5
        while relayed.subscriptions != 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        trouble.extend(["cancelled", "unanswered", "cancelled"])
        hub.leave("X:AUSD", "1h", box)
        while relayed.subscriptions != 0:
            assert time.monotonic() < deadline, (trouble, relay.subscriptions())
            await asyncio.sleep(0.01)
        assert trouble == [] and contexts == {"none"}  # the polls ran outside the viewer's request
        assert not any(task.done() for task in hub._tasks)
        await hub.close()
        await relay.close()

    run_async(scenario())
