"""The stop that lets requests in flight finish (launcher/drain.py), without Ray: the Shed
middleware counting requests, the replica's reporter thread writing its count once the flag is
raised, and the stopper waiting for every replica's report of none. The whole stop under load
through `python -m serve_app` is tests/test_service_process.py's SIGTERM under load."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from launcher.drain import clear_reports, wait_until_idle
from serve_app.middleware import Shed
from serve_app.stopping import DrainFlag, InFlight, report_when_stopping


def _reads(path: Path, text: str, timeout_s: float) -> bool:
    """Whether `path` holds `text` within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text() == text:
            return True
        time.sleep(0.01)
    return False


def _request() -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/", "headers": []}


def test_a_replica_reports_its_requests_in_flight_until_none_is_left(tmp_path: Path) -> None:
    flag, reports = DrainFlag(tmp_path / "draining"), tmp_path / "in-flight"
    (reports).mkdir()
    (reports / "1").write_text("0\n")  # a previous stop's report
    clear_reports(reports)
    assert not list(reports.iterdir())
    release = asyncio.Event()
    answered: list[int] = []

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        answered.append(200)

    in_flight = InFlight()
    shed = Shed(slow_app, stopping=DrainFlag(flag.path), in_flight=in_flight)
    reporter = report_when_stopping(DrainFlag(flag.path), in_flight, reports)

    async def scenario() -> tuple[bool, list[dict[str, Any]], bool]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        running = asyncio.ensure_future(shed(_request(), receive, send))
        await asyncio.sleep(0.05)
        assert in_flight.count == 1
        flag.raise_flag()
        # the reporter read the flag and wrote its one request in flight (waited for, not slept on)
        wrote = await asyncio.to_thread(_reads, reports / str(os.getpid()), "1\n", 10.0)
        busy = await asyncio.to_thread(wait_until_idle, reports, 1, 0.3)
        assert wrote
        await shed(_request(), receive, send)  # a new request while stopping: 503, not admitted
        release.set()
        await running
        idle = await asyncio.to_thread(wait_until_idle, reports, 1, 5.0)
        return busy, sent, idle

    busy, sent, idle = asyncio.run(scenario())
    assert not busy  # one request in flight: the stopper waits
    assert sent[0]["status"] == 503 and answered == [200]
    assert idle and (reports / str(os.getpid())).read_text() == "0\n"
    reporter.join(timeout=2)
    assert not reporter.is_alive()  # done once the replica reported none


def test_the_stopper_waits_for_every_replica_and_gives_up_at_its_timeout(tmp_path: Path) -> None:
    reports = tmp_path / "in-flight"
    reports.mkdir()
    (reports / "101").write_text("0\n")
    (reports / "102").write_text("3\n")
    (reports / "103.partial").write_text("0\n")  # a report being written is not one
    started = time.monotonic()
    assert not wait_until_idle(reports, 2, 0.2)
    assert time.monotonic() - started >= 0.2
    (reports / "102").write_text("0\n")
    assert wait_until_idle(reports, 2, 0.2)
    assert wait_until_idle(tmp_path / "none", 0, 0.1)  # no API replica: nothing to wait for
    assert not wait_until_idle(tmp_path / "none", 1, 0.1)
