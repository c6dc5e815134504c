"""What the live WebSocket runs on, built once per process (an API replica)."""

from __future__ import annotations

from dataclasses import dataclass

from streaming.admission import Admission
from streaming.hub import LiveHub


@dataclass
class LiveMarket:
    hub: LiveHub  # one market stream, fanned out to this process's sockets
    admission: Admission  # sockets per client address and per signed-in user
