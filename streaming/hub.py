"""The fan-out of one market stream to many sockets, in one event loop.

Viewers of a symbol share one subscription upstream: it opens with the first viewer and closes
`linger_s` after the last one leaves (a page reload does not churn the upstream). Viewers of the
same symbol and timeframe share one forming candle, so a tick costs one candle update and one
message object however many watch; a forming update goes out as its tick arrives, at most one
per `flush_s` per channel (later ticks within it coalesce), closed candles at once. The
upstream's state (connected, reconnecting) reaches every viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from market_data.stream import CONNECTED, MarketStream, Tick, run_forever
from market_data.timeframes import TIMEFRAMES
from streaming.candles import Candle, FormingCandle
from streaming.outbox import Frame, LiveStats, Message, Outbox

log = logging.getLogger(__name__)
FIRST_WORD_S = 5.0  # how long a new channel waits for the stream's first status

# (ticker, timeframe) -> the last closed close and the source's partial candle of the forming
# bucket, if it has one; blocking (database, market source): called in a worker thread
Seeder = Callable[[str, str, datetime], tuple[float, Candle | None]]


@dataclass
class _Channel:
    """The viewers of one symbol and timeframe."""

    candle: FormingCandle
    outboxes: set[Outbox] = field(default_factory=set)
    sent_at: float = float("-inf")  # the event loop's time of the last forming update sent
    pending: asyncio.TimerHandle | None = None  # a forming update held back by `flush_s`


def candle_message(ticker: str, timeframe: str, candle: Candle, closed: bool) -> Message:
    return Frame(type="candle", symbol=ticker, timeframe=timeframe, candle=candle.row(), closed=closed)


def status_message(state: str, text: str) -> Message:
    return Frame(type="status", status=state, message=text)


class LiveHub:
    def __init__(self, stream: MarketStream, seed: Seeder, linger_s: float = 10.0, flush_s: float = 0.25,
                 report_s: float = 5.0) -> None:
        self.stream, self.seed, self.linger_s, self.flush_s = stream, seed, linger_s, flush_s
        self.stats = LiveStats()
        self.report_s = report_s
        self.reporter: Callable[[LiveStats], None] | None = None  # the metrics, every `report_s`
        self.state, self.state_text = "connecting", "connecting to live market data"
        self._channels: dict[tuple[str, str], _Channel] = {}
        self._viewers: dict[str, int] = {}  # ticker -> sockets watching it, all timeframes
        self._lingering: dict[str, asyncio.TimerHandle] = {}
        self._seeding: dict[tuple[str, str], asyncio.Task[FormingCandle]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._heard: asyncio.Event | None = None  # set once the stream has said how it is

    # -- viewers -------------------------------------------------------------------------------
    async def join(self, ticker: str, timeframe: str, outbox: Outbox) -> None:
        """Start sending `outbox` the candles of `ticker` in `timeframe`: the upstream's state and the
        forming candle at once, then every update. Raises what seeding raised (market data down)."""
        self.start()
        key = (ticker, timeframe)
        self._watch(ticker)
        try:
            channel = self._channels.get(key) or await self._open(key)
        except BaseException:
            self._unwatch(ticker)
            raise
        channel.outboxes.add(outbox)
        self.stats.viewers += 1
        outbox.put(status_message(self.state, self.state_text))
        outbox.put_forming(candle_message(ticker, timeframe, channel.candle.current, False))

    def leave(self, ticker: str, timeframe: str, outbox: Outbox) -> None:
        channel = self._channels.get((ticker, timeframe))
        if channel is None or outbox not in channel.outboxes:
            return
        channel.outboxes.discard(outbox)
        self.stats.viewers -= 1
        if not channel.outboxes:
            if channel.pending is not None:
                channel.pending.cancel()
            del self._channels[(ticker, timeframe)]
        self._unwatch(ticker)

    async def _open(self, key: tuple[str, str]) -> _Channel:
        """One seeding per channel, however many viewers arrive while it runs."""
        task = self._seeding.get(key)
        if task is None:
            task = asyncio.ensure_future(self._seeded(*key))
            self._seeding[key] = task
            task.add_done_callback(lambda _t: self._seeding.pop(key, None))
        candle = await asyncio.shield(task)
        return self._channels.setdefault(key, _Channel(candle))

    async def _seeded(self, ticker: str, timeframe: str) -> FormingCandle:
        """A relayed stream knows the market's time (a replay's) only from its first answer: wait
        for the stream's first word, briefly (a stream that cannot connect keeps the clock's)."""
        assert self._heard is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._heard.wait(), FIRST_WORD_S)
        now = self.stream.now()
        last_close, partial = await asyncio.to_thread(self.seed, ticker, timeframe, now)
        candle = FormingCandle.start(timeframe, now, last_close, partial)
        candle.changed = False  # each viewer gets the seeded state as it joins
        return candle

    def _watch(self, ticker: str) -> None:
        pending = self._lingering.pop(ticker, None)
        if pending is not None:
            pending.cancel()
        self._viewers[ticker] = self._viewers.get(ticker, 0) + 1
        if self._viewers[ticker] == 1 and pending is None:
            self.stream.subscribe(ticker)
            self.stats.subscriptions += 1

    def _unwatch(self, ticker: str) -> None:
        self._viewers[ticker] -= 1
        if self._viewers[ticker] == 0:
            del self._viewers[ticker]
            loop = asyncio.get_running_loop()
            self._lingering[ticker] = loop.call_later(self.linger_s, self._drop, ticker)

    def _drop(self, ticker: str) -> None:
        self._lingering.pop(ticker, None)
        if ticker not in self._viewers:
            self.stream.unsubscribe(ticker)
            self.stats.subscriptions -= 1

    # -- the stream ----------------------------------------------------------------------------
    def start(self) -> None:
        """Run the stream (at the first viewer, or at the app's start-up: a relayed stream then
        keeps its lease and the cluster's figures current before anyone watches).

        The tasks run in a context of their own: one started by a viewer's request must not
        inherit that request's (Ray Serve cancels the calls a request made when it ends, and the
        stream's polls would be among them). A task that ended anyway is started again."""
        if self._tasks and not any(task.done() for task in self._tasks):
            return
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("the live hub's %s ended: %r; starting it again", task.get_name(), task.exception())
            task.cancel()
        if self._heard is None:
            self._heard = asyncio.Event()
        loop, context = asyncio.get_running_loop(), contextvars.Context()
        self._tasks = [loop.create_task(self._run_stream(), name="stream", context=context),
                       loop.create_task(self._flush(), name="flush", context=context)]

    async def _run_stream(self) -> None:
        await run_forever(self.stream, self._on_tick, self._on_status)

    def _on_status(self, state: str, text: str) -> None:
        if self._heard is not None:
            self._heard.set()
        if state == self.state:
            return
        if state != CONNECTED and self.state == CONNECTED:
            self.stats.reconnects += 1
        self.state, self.state_text = state, text
        self._broadcast_all(status_message(state, text))

    def _on_tick(self, tick: Tick) -> None:
        """A tick goes out at once unless its channel sent one less than `flush_s` ago; then the
        newest state goes out when `flush_s` has passed (at most 1 / flush_s updates a second,
        and a lone tick is never held back)."""
        loop = asyncio.get_running_loop()
        ticker = tick.ticker
        for timeframe in TIMEFRAMES:  # a handful of lookups, however many symbols are watched
            channel = self._channels.get((ticker, timeframe))
            if channel is not None:
                self._send_closed(ticker, timeframe, channel, channel.candle.apply(tick))
                if not channel.candle.changed or channel.pending is not None:
                    continue
                wait = channel.sent_at + self.flush_s - loop.time()
                if wait <= 0:
                    self._send_forming(ticker, timeframe, channel)
                else:
                    channel.pending = loop.call_later(wait, self._send_forming, ticker, timeframe, channel)

    def _send_forming(self, ticker: str, timeframe: str, channel: _Channel) -> None:
        channel.pending = None
        if not channel.candle.changed:
            return
        channel.candle.changed = False
        channel.sent_at = asyncio.get_running_loop().time()
        message = candle_message(ticker, timeframe, channel.candle.current, False)
        for outbox in channel.outboxes:
            outbox.put_forming(message)

    def _send_closed(self, ticker: str, timeframe: str, channel: _Channel, closed: list[Candle]) -> None:
        for candle in closed:
            message = candle_message(ticker, timeframe, candle, True)
            for outbox in channel.outboxes:
                outbox.put(message)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        reported = loop.time()
        while True:
            await asyncio.sleep(self.flush_s)
            if self.reporter is not None and loop.time() - reported >= self.report_s:
                reported = loop.time()
                self.reporter(self.stats)
            now = self.stream.now()
            for (ticker, timeframe), channel in list(self._channels.items()):
                self._send_closed(ticker, timeframe, channel, channel.candle.advance(now))
                if channel.pending is None:  # the clock opened the next candle
                    self._send_forming(ticker, timeframe, channel)

    def _broadcast_all(self, message: Message) -> None:
        for channel in self._channels.values():
            for outbox in channel.outboxes:
                outbox.put(message)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for handle in self._lingering.values():
            handle.cancel()
        for channel in self._channels.values():
            if channel.pending is not None:
                channel.pending.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
