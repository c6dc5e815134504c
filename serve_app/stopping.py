"""The replica's side of a stop that lets the requests in flight finish (the launcher's side:
`launcher.drain`): the flag the stopping service raises in its state directory, which every API
replica on the machine reads (the `Shed` middleware then answers new requests 503 `stopping` with
Retry-After), and the replica's report, in a file of its own beside the flag, of how many
requests it is still answering. Files, not messages to each replica: Serve has no call that
reaches every replica of a deployment; a replica reads the flag with one stat at most every
CHECK_S, and its reporter thread reads it as often while idle.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CHECK_S = 0.1
RETRY_AFTER_S = 30  # a supervisor's restart of the service takes about a minute


class DrainFlag:
    """The flag at `path`: raised by the stopping service, read by its replicas."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._checked = float("-inf")
        self._raised = False

    def raise_flag(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{os.getpid()}\n")

    def lower(self) -> None:
        self.path.unlink(missing_ok=True)

    def __call__(self) -> bool:
        """Whether the service is stopping (once raised, it stays so for this replica)."""
        now = time.monotonic()
        if not self._raised and now - self._checked >= CHECK_S:
            self._checked = now
            self._raised = self.path.exists()
        return self._raised


@dataclass
class InFlight:
    """How many requests this replica is answering (the `Shed` middleware counts them; one event
    loop writes it, the reporter thread only reads it)."""

    count: int = 0


def report_when_stopping(flag: DrainFlag, in_flight: InFlight, reports: Path) -> threading.Thread:
    """A daemon thread of an API replica: once the flag is raised, it writes the replica's count
    of requests in flight to `reports`/<pid> until it is 0 (no new ones are admitted then)."""

    def run() -> None:
        while not flag():
            time.sleep(CHECK_S)
        path = reports / str(os.getpid())
        while True:
            count = in_flight.count
            _write_atomic(path, count)
            if count == 0:
                return
            time.sleep(CHECK_S / 2)

    thread = threading.Thread(target=run, name="drain-report", daemon=True)
    thread.start()
    return thread


def _write_atomic(path: Path, count: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(f"{count}\n")
    partial.replace(path)
