"""What one socket still has to send, bounded so that a slow reader never holds up the others.

A socket watches one symbol and timeframe, so a newer forming-candle update makes the unsent one
worthless: it is replaced (counted as dropped). Closed candles, status and answers to the client
keep their order and are never dropped; a reader so far behind that `MAX_ORDERED` of them wait
is cut off (`Overflow`) rather than buffered without end.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]
MAX_ORDERED = 64


class Frame(dict[str, Any]):
    """A message that many sockets send (a channel's candle, the upstream's state): encoded to
    JSON once, by the first socket that sends it, instead of once per socket."""

    __slots__ = ("_text",)

    def text(self) -> str:
        try:
            return self._text
        except AttributeError:
            self._text: str = json.dumps(self, separators=(",", ":"))
            return self._text


def encoded(message: Message) -> str:
    return message.text() if isinstance(message, Frame) else json.dumps(message, separators=(",", ":"))


@dataclass
class LiveStats:
    """What the live sockets did, counted since start (Prometheus derives per-second rates)."""

    viewers: int = 0
    subscriptions: int = 0
    sent: int = 0
    dropped: int = 0
    reconnects: int = 0


class Overflow(Exception):
    """The reader stopped reading: more than MAX_ORDERED messages that must not be dropped wait."""


class Outbox:
    def __init__(self, stats: LiveStats | None = None, max_ordered: int = MAX_ORDERED) -> None:
        self.stats = stats or LiveStats()
        self._ordered: deque[Message] = deque()
        self._forming: Message | None = None
        self._ready = asyncio.Event()
        self.max_ordered = max_ordered
        self.overflowed = False

    def put_forming(self, message: Message) -> None:
        if self._forming is not None:
            self.stats.dropped += 1
        self._forming = message
        self._ready.set()

    def put(self, message: Message) -> None:
        """A message that must arrive; a closed candle also retires the unsent forming update."""
        if message.get("closed") and self._forming is not None:
            self._forming = None
            self.stats.dropped += 1
        if len(self._ordered) >= self.max_ordered:
            self.overflowed = True
        else:
            self._ordered.append(message)
        self._ready.set()

    def pending(self) -> int:
        return len(self._ordered) + (self._forming is not None)

    async def get(self) -> Message:
        while True:
            if self.overflowed:
                raise Overflow(f"{self.max_ordered} messages waited for a reader that stopped reading")
            if self._ordered:
                return self._ordered.popleft()
            if self._forming is not None:
                message, self._forming = self._forming, None
                return message
            self._ready.clear()
            await self._ready.wait()
