"""Live market data: one interface over each source's stream, beside the REST one (`source.py`).

A stream is subscribed per ticker and delivers `Tick`s: per-second aggregates or single trades
(a trade is a tick whose open, high, low and close are its price). It runs until cancelled,
reconnecting on its own, and says how its upstream is through status callbacks, so that viewers
are told rather than left with a chart that silently stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

CONNECTED, RECONNECTING = "connected", "reconnecting"
DISCONNECTED_TEXT = "Live data disconnected. Reconnecting..."
RESTART_S = 5.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tick:
    ticker: str
    at: datetime  # aware UTC: the second an aggregate opened, or a trade's time
    open: float
    high: float
    low: float
    close: float
    volume: float


TickSink = Callable[[Tick], None]
StatusSink = Callable[[str, str], None]  # (CONNECTED | RECONNECTING, a message for people)


class MarketStream(Protocol):
    name: str

    def now(self) -> datetime:
        """The market's time: the clock's, or the replayed moment of a replay."""
        ...

    def subscribe(self, ticker: str) -> None: ...

    def unsubscribe(self, ticker: str) -> None: ...

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        """Deliver ticks of the subscribed tickers until cancelled."""
        ...


def cancelled_here() -> bool:
    """Whether the running task itself was asked to stop. A `CancelledError` can also come out of
    an await whose callee was cancelled (Ray Serve raises one where the remote call was cancelled
    downstream): that is a failed call to retry, not a reason for a stream to end."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


async def run_forever(stream: MarketStream, on_tick: TickSink, on_status: StatusSink) -> None:
    """Run `stream` until cancelled. A stream's run() retries its upstream on its own; this only
    outlives the stream's own bugs (and a cancellation meant for something else), telling the
    viewers meanwhile."""
    while True:
        try:
            await stream.run(on_tick, on_status)
        except asyncio.CancelledError:
            if cancelled_here():
                raise
            log.warning("the %s market stream was cancelled from below; starting it again in %.0f s",
                        stream.name, RESTART_S)
        except Exception:
            log.exception("the %s market stream failed; starting it again in %.0f s", stream.name, RESTART_S)
        else:
            continue
        on_status(RECONNECTING, DISCONNECTED_TEXT)
        await asyncio.sleep(RESTART_S)
