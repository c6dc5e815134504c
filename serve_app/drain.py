"""A stop that lets the requests in flight finish. Serve's own shutdown kills HAProxy first
(SIGKILL), cutting off every request in flight. So on SIGTERM or Ctrl-C `python -m serve_app`
first raises a flag in its state directory: every API replica on the machine then answers new
requests 503 `stopping` with Retry-After (the `Shed` middleware) and reports, in a file of its
own beside the flag, how many requests it is still answering; the service waits until every
replica has reported none, then has HAProxy stop accepting and finish its connections (SIGUSR1,
HAProxy's soft stop), and only then shuts Serve down. Files, not messages to each replica: Serve
has no call that reaches every replica of a deployment; a replica reads the flag with one stat
at most every CHECK_S, and its reporter thread reads it as often while idle.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

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


def clear_reports(reports: Path) -> None:
    """Before the flag is raised: a previous stop's reports would say replicas are idle."""
    if reports.is_dir():
        for path in reports.iterdir():
            path.unlink(missing_ok=True)


def wait_until_idle(reports: Path, replicas: int, timeout_s: float, poll_s: float = 0.05) -> bool:
    """After the flag is raised: wait until `replicas` API replicas have reported no request in
    flight, so that Serve's shutdown (which stops HAProxy first) cuts none off; at most
    `timeout_s`. Returns whether they did."""
    deadline = time.monotonic() + timeout_s
    while True:
        idle = sum(1 for path in reports.glob("[0-9]*") if path.name.isdigit() and _count(path) == 0) \
            if reports.is_dir() else 0
        if idle >= replicas:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


def _count(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def soft_stop(haproxies: list[psutil.Process], timeout_s: float) -> None:
    """HAProxy stops listening and closes each connection after its answer (new callers are
    refused, never cut off mid-answer); waits for the processes to end, at most `timeout_s`."""
    for proc in haproxies:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGUSR1)
    psutil.wait_procs(haproxies, timeout=timeout_s)
