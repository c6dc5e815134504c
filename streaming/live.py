"""What the live WebSocket runs on, built once per process (an API replica)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from streaming.admission import Admission
from streaming.hub import LiveHub


@dataclass
class LiveMarket:
    hub: LiveHub  # one market stream, fanned out to this process's sockets
    admission: Admission  # sockets per client address and per signed-in user
    # symbols subscribed upstream: the cluster's, where the stream is relayed; else the hub's own
    upstream_subscriptions: Callable[[], int] | None = field(default=None)

    def upstream(self) -> int:
        return self.upstream_subscriptions() if self.upstream_subscriptions else self.hub.stats.subscriptions
