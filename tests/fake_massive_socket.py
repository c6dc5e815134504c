"""A loopback WebSocket server that speaks Massive's documented crypto socket protocol: a
`connected` status on open, `auth` with the key, `subscribe`/`unsubscribe` acknowledged, then
per-second aggregates (`XAS`) of the subscribed pairs every `interval_s`.

Every aggregate's close is new (`start + step * n` for the n-th one sent), so whoever sees a
close downstream knows which aggregate it was and, with `record`, when it left this server:
the live benchmark's tick-to-viewer latency. `drop()` cuts every connection without a close frame.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import websockets


class FakeMassiveSocket:
    def __init__(self, key: str = "test-key", interval_s: float = 0.05, start: float = 100.0, step: float = 0.5,
                 record: bool = False) -> None:
        self.key, self.interval_s, self.start, self.step, self.record = key, interval_s, start, step, record
        self.subscriptions: list[str] = []  # every subscribe, in order, resubscriptions included
        self.connections = 0
        self.sent_at: dict[tuple[str, float], float] = {}  # (pair, close) -> wall time sent, when `record`
        self._n = 0
        self._conns: set[Any] = set()
        self._topics: dict[Any, set[str]] = {}  # each open connection's subscriptions
        self._loop: asyncio.AbstractEventLoop | None = None

    def _next_close(self) -> float:
        self._n += 1
        return self.start + self.step * self._n

    async def handler(self, ws: Any) -> None:
        self.connections += 1
        self._conns.add(ws)
        topics: set[str] = set()
        self._topics[ws] = topics
        try:
            await ws.send(json.dumps([{"ev": "status", "status": "connected", "message": "Connected Successfully"}]))
            auth = json.loads(await ws.recv())
            if auth != {"action": "auth", "params": self.key}:
                await ws.send(json.dumps([{"ev": "status", "status": "auth_failed", "message": "authentication failed"}]))
                return
            await ws.send(json.dumps([{"ev": "status", "status": "auth_success", "message": "authenticated"}]))

            async def feed() -> None:
                while True:
                    await asyncio.sleep(self.interval_s)
                    now_ms = int(time.time() * 1000)
                    batch = []
                    for topic in sorted(topics):
                        close = self._next_close()
                        batch.append({"ev": "XAS", "pair": topic.removeprefix("XAS."), "o": close - self.step,
                                      "h": close, "l": close - self.step, "c": close, "v": 2.0,
                                      "s": now_ms - 1000, "e": now_ms})
                    if batch:
                        sent = time.time()
                        await ws.send(json.dumps(batch))
                        if self.record:
                            self.sent_at.update({(b["pair"], b["c"]): sent for b in batch})

            feeder = asyncio.ensure_future(feed())
            try:
                async for raw in ws:
                    message = json.loads(raw)
                    for topic in message["params"].split(","):
                        if message["action"] == "subscribe":
                            topics.add(topic)
                            self.subscriptions.append(topic)
                        else:
                            topics.discard(topic)
                        await ws.send(json.dumps([{"ev": "status", "status": "success",
                                                   "message": f"{message['action']}d to: {topic}"}]))
            finally:
                feeder.cancel()
        except websockets.ConnectionClosed:
            pass  # the client went away (or was dropped): nothing more to say to it
        finally:
            self._conns.discard(ws)
            self._topics.pop(ws, None)

    def active_topics(self) -> int:
        """Subscriptions held now, over every open connection (what the provider would bill)."""
        return sum(len(topics) for topics in list(self._topics.values()))

    def drop(self) -> None:
        for ws in list(self._conns):
            ws.transport.abort()  # no close frame: what a network failure looks like

    def serve_in_thread(self) -> int:
        """Serve on a free loopback port from a thread of its own (for a server in another
        process); returns the port."""
        started = threading.Event()
        port: list[int] = []

        async def main() -> None:
            async with websockets.serve(self.handler, "127.0.0.1", 0, max_size=None) as server:
                port.append(server.sockets[0].getsockname()[1])
                started.set()
                await asyncio.Future()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(main())

        threading.Thread(target=run, daemon=True).start()
        if not started.wait(30):
            raise RuntimeError("the loopback Massive socket did not start")
        return port[0]
