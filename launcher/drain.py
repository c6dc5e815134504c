"""A stop that lets the requests in flight finish, the launcher's side. Serve's own shutdown kills
HAProxy first (SIGKILL), cutting off every request in flight. So on SIGTERM or Ctrl-C `python -m
serve_app` first raises a flag in its state directory (`serve_app.stopping`: every API replica
then refuses new requests and reports how many it is still answering); the launcher waits until
every replica has reported none, then has HAProxy stop accepting and finish its connections
(SIGUSR1, HAProxy's soft stop), and only then shuts Serve down.
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import psutil


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
