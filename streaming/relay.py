"""One upstream market stream for a whole cluster, relayed to every API replica.

`Relay` runs where the upstream connection is (one stream replica). Each API replica long-polls
it with the tickers its viewers watch and the cursor of the last tick it got; the relay
subscribes upstream to the union of what the live replicas want, drops a ticker `linger_s` after
no replica wants it, and forgets a replica that stopped polling for `lease_s` (a crashed one).
Ticks wait in a bounded ring, so a replica that missed a second (a retried poll, a restarted
stream handle) resumes exactly where it was instead of losing what a pub/sub would have dropped.

`RelayedStream` is the replica's side: a `MarketStream` whose ticks come from polling, so the
replica's hub works on it exactly as on a direct upstream. The poll itself (a Ray Serve handle
call) is passed in: nothing here knows Ray.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from market_data.stream import (
    CONNECTED,
    DISCONNECTED_TEXT,
    RECONNECTING,
    MarketStream,
    StatusSink,
    Tick,
    TickSink,
    cancelled_here,
    run_forever,
)

log = logging.getLogger(__name__)

RING = 20_000  # ticks kept for pollers that fall behind (100 symbols at 1/s: over three minutes)
BATCH_S = 0.01  # after the first new tick, wait this long for its siblings (one call, not many)
POLL_TIMEOUT_S = 10.0  # a poll the relay answers within its 1 s wait; one unanswered this long is retried


@dataclass(frozen=True)
class Batch:
    """What one poll answers: ticks after the cursor as plain tuples (cheap to serialise), the
    cursor to send next, the upstream's state, and the stream's time (a replay's time)."""

    cursor: int
    ticks: list[tuple[str, float, float, float, float, float, float]]
    state: str
    state_text: str
    now: float  # the stream's time, epoch seconds
    subscriptions: int


def pack(tick: Tick) -> tuple[str, float, float, float, float, float, float]:
    return (tick.ticker, tick.at.timestamp(), tick.open, tick.high, tick.low, tick.close, tick.volume)


def unpack(row: tuple[str, float, float, float, float, float, float]) -> Tick:
    ticker, at, o, h, lo, c, v = row
    return Tick(ticker, datetime.fromtimestamp(at, tz=timezone.utc), o, h, lo, c, v)


@dataclass
class _Lease:
    tickers: frozenset[str]
    seen: float


@dataclass
class Relay:
    stream: MarketStream
    linger_s: float = 5.0
    lease_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    state: str = "connecting"
    state_text: str = "connecting to live market data"
    reconnects: int = 0
    _ring: deque[tuple[int, Tick]] = field(default_factory=lambda: deque(maxlen=RING))
    _seq: int = 0
    _leases: dict[str, _Lease] = field(default_factory=dict)
    _subscribed: set[str] = field(default_factory=set)
    _unwanted_since: dict[str, float] = field(default_factory=dict)
    _news: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None

    def subscriptions(self) -> int:
        return len(self._subscribed)

    def _start(self) -> None:
        if self._task is None:
            self._news = asyncio.Event()
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        await run_forever(self.stream, self._on_tick, self._on_status)

    def _on_tick(self, tick: Tick) -> None:
        if tick.ticker in self._subscribed:
            self._seq += 1
            self._ring.append((self._seq, tick))
            assert self._news is not None
            self._news.set()

    def _on_status(self, state: str, text: str) -> None:
        if state != CONNECTED and self.state == CONNECTED:
            self.reconnects += 1
        self.state, self.state_text = state, text
        if self._news is not None:
            self._news.set()

    def _reconcile(self, now: float) -> None:
        """Subscribe what a live replica wants; drop what none has wanted for `linger_s`."""
        for holder in [h for h, lease in self._leases.items() if now - lease.seen > self.lease_s]:
            log.info("live relay: replica %s stopped polling; its symbols are released", holder)
            del self._leases[holder]
        wanted = set().union(*(lease.tickers for lease in self._leases.values())) if self._leases else set()
        for ticker in wanted - self._subscribed:
            self.stream.subscribe(ticker)
            self._subscribed.add(ticker)
        for ticker in self._subscribed - wanted:
            since = self._unwanted_since.setdefault(ticker, now)
            if now - since >= self.linger_s:
                self.stream.unsubscribe(ticker)
                self._subscribed.discard(ticker)
                del self._unwanted_since[ticker]
        for ticker in wanted:
            self._unwanted_since.pop(ticker, None)

    async def poll(self, holder: str, tickers: list[str], cursor: int, wait_s: float = 1.0) -> Batch:
        """The ticks of `tickers` after `cursor`, waiting up to `wait_s` for one; renews `holder`'s lease.
        A cursor of -1 (a replica that just started) begins at the newest tick."""
        self._start()
        self._leases[holder] = _Lease(frozenset(tickers), self.clock())
        self._reconcile(self.clock())
        if cursor < 0:
            cursor = self._seq
        wanted, state = set(tickers), self.state
        deadline = self.clock() + wait_s
        assert self._news is not None
        while not (ticks := self._after(cursor, wanted)) and self.state == state:
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            self._news.clear()
            try:
                await asyncio.wait_for(self._news.wait(), remaining)
            except TimeoutError:
                break
            await asyncio.sleep(BATCH_S)
        self._reconcile(self.clock())
        return Batch(self._seq, [pack(t) for t in ticks], self.state, self.state_text,
                     self.stream.now().timestamp(), len(self._subscribed))

    def _after(self, cursor: int, wanted: set[str]) -> list[Tick]:
        """The ticks of `wanted` after `cursor`, oldest first (the ring's newest end only)."""
        out = []
        for seq, tick in reversed(self._ring):
            if seq <= cursor:
                break
            if tick.ticker in wanted:
                out.append(tick)
        out.reverse()
        return out

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


PollFn = Callable[[list[str], int], Awaitable[Batch]]


class RelayedStream:
    """An API replica's market stream: the relay's ticks of the tickers this replica's viewers watch."""

    name = "relayed"

    def __init__(self, poll: PollFn, retry_s: float = 1.0, max_retry_s: float = 15.0,
                 timeout_s: float = POLL_TIMEOUT_S) -> None:
        self.poll, self.retry_s, self.max_retry_s, self.timeout_s = poll, retry_s, max_retry_s, timeout_s
        self._wanted: set[str] = set()
        self._now: tuple[float, float] | None = None  # (stream time, monotonic) of the last batch
        self.subscriptions = 0  # upstream, cluster-wide, as the last batch said

    def now(self) -> datetime:
        if self._now is None:
            return datetime.now(timezone.utc)
        at, seen = self._now
        return datetime.fromtimestamp(at, tz=timezone.utc) + timedelta(seconds=time.monotonic() - seen)

    def subscribe(self, ticker: str) -> None:
        self._wanted.add(ticker)

    def unsubscribe(self, ticker: str) -> None:
        self._wanted.discard(ticker)

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        cursor, pause, failing = -1, self.retry_s, False
        while True:
            try:
                batch = await asyncio.wait_for(self.poll(sorted(self._wanted), cursor), self.timeout_s)
            except (Exception, asyncio.CancelledError) as exc:
                # the stream replica died, is being replaced, never answered, or cancelled the call:
                # the loop goes on, or the replica's figures (its viewers, the upstream's
                # subscriptions) would freeze at their last value while it says it is connected
                if isinstance(exc, asyncio.CancelledError) and cancelled_here():
                    raise
                if not failing:
                    log.warning("live relay unreachable (%s); retrying", type(exc).__name__)
                    failing = True
                on_status(RECONNECTING, DISCONNECTED_TEXT)
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.max_retry_s)
                continue
            failing, pause = False, self.retry_s
            if batch.cursor < cursor:  # a new relay (restarted): its sequence began again
                cursor = -1
                continue
            cursor = batch.cursor
            self._now = (batch.now, time.monotonic())
            self.subscriptions = batch.subscriptions
            on_status(batch.state, batch.state_text)
            for row in batch.ticks:
                if row[0] in self._wanted:
                    on_tick(unpack(row))
            if not self._wanted:
                await asyncio.sleep(0.2)  # nobody watches: keep the lease and the clock, cheaply
