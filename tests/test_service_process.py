"""`python -m serve_app` as an operator runs it, a process of its own: its own local Ray, HAProxy
and settings; a crash (kill -9) and the start after it; a second service beside it on another
port; SIGTERM under load. One service's life in one test, since each start costs a Ray cluster
and eleven replicas on two cores (and the suite a minute)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil
import pytest

from config import PORT_OFFSETS
from launcher.ray_env import HAPROXY_WRAPPER
from tests import tlog_client
from tests.conftest import _free_port, process_running
from tests.served_world import served_world, top_symbol

ANONYMOUS_QUOTA = 2  # the second service's, to check that quotas count per client address


@pytest.fixture(scope="module")
def world(tmp_path_factory, pg_database_url_module: str) -> dict[str, str]:
    return served_world(tmp_path_factory.mktemp("service"), pg_database_url_module)


@pytest.mark.slow
def test_a_service_crashes_starts_again_and_drains_on_sigterm_beside_another(world, tmp_path) -> None:
    """A (every port derived from its SERVE_PORT) and B (another port, its own settings) start side
    by side; A is killed -9 but for its HAProxy and started again on the same port; B passes its
    settings' checks; SIGTERM to A under 50 callers drains it while B keeps serving; B's Ctrl-C
    leaves no HAProxy behind."""
    port_a = _free_service_port()
    port_b = _free_service_port((port_a,))
    listeners_b = (_free_port(), _free_port())  # B's HAProxy metrics and stats, set rather than derived
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    b = _start_service(world, tmp_path, port_b, log_b, SERVE_METRICS_PORT=str(listeners_b[0]),
                       SERVE_STATS_PORT=str(listeners_b[1]), QUOTA_ANONYMOUS=str(ANONYMOUS_QUOTA))
    running = [b, _start_service(world, tmp_path, port_a, log_a)]
    try:
        assert _healthy(port_b, b, 240), log_b.read_text()[-3000:]
        a = _crash_and_start_again(world, running[1], port_a, log_a)
        running.append(a)
        assert httpx.get(f"http://127.0.0.1:{port_a + PORT_OFFSETS['metrics']}/metrics", timeout=10).status_code == 200
        ticker = top_symbol(world)
        _uses_its_own_settings(b, port_b, listeners_b, log_b, ticker)
        _drains_on_sigterm(a, port_a, log_a, ticker)
        assert _healthy(port_b, b, 10), "the other instance stopped serving"
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.4"), timeout=60) as http:
            answer = http.post(f"http://127.0.0.1:{port_b}/ml/predict", json={"symbol": ticker, "timeframe": "1d",
                                                                             "num_steps": 2})
            assert answer.status_code == 200
            _proven_by_an_outsider(http, port_b, answer.json())
    finally:
        _stop(running)
    records = _state(log_b, port_b) / "haproxy"
    left = [int(p.stem) for p in records.glob("*.pid") if process_running(int(p.stem))]
    assert not left, f"HAProxy processes outlived a clean stop: {left}"


def _proven_by_an_outsider(http: httpx.Client, port: int, answer: dict[str, Any]) -> None:
    """The forecast is in a checkpoint signed by the log's key, proven by tests/tlog_client.py,
    which shares no code with the service (a new checkpoint comes within LEDGER_CHECKPOINT_S)."""
    base, index = f"http://127.0.0.1:{port}", answer["ledger"]["index"]
    vkey = http.get(f"{base}/api/ledger/key").json()["vkey"]
    deadline = time.monotonic() + 60
    while (checkpoint := tlog_client.read_checkpoint(http.get(f"{base}/api/ledger/checkpoint").text, vkey)).size <= index:
        assert time.monotonic() < deadline, f"no checkpoint holds entry {index} after 60 s"
        time.sleep(1)
    proof = http.get(f"{base}/api/ledger/proof/inclusion", params={"index": index, "tree_size": checkpoint.size}).json()
    leaf = base64.b64decode(answer["ledger"]["leaf_hash"])
    assert tlog_client.root_from_inclusion(index, checkpoint.size, leaf, [base64.b64decode(h) for h in proof["hashes"]]) \
        == checkpoint.root


def _state(log: Path, port: int) -> Path:
    """The service's state directory (it was started in the log's directory)."""
    return log.parent / "var" / "run" / f"serve-{port}"


def _start_service(world: dict[str, str], cwd: Path, port: int, log: Path, **settings: str) -> Any:
    """`python -m serve_app` on `port`, every other port derived from it unless `settings` name it."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(world, SERVE_PORT=str(port), PYTHONUNBUFFERED="1", RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]), **settings)
    with open(log, "a") as out:
        return subprocess.Popen([sys.executable, "-m", "serve_app"], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _stop(running: list[Any]) -> None:
    """Ctrl-C to each service still running; SIGKILL to one that does not end within a minute."""
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
    for proc in running:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def _crash_and_start_again(world: dict[str, str], first: Any, port: int, log: Path) -> Any:
    """kill -9 of the service's whole process tree but HAProxy (which then holds SERVE_PORT as an
    orphan): the next start on the same port ends that HAProxy, found by its pid file and checked
    to be it, and is healthy within 120 s; a third on the port in use is refused with one line
    naming the port and the process. Returns the service started again."""
    assert _healthy(port, first, 240), log.read_text()[-3000:]
    records = _state(log, port) / "haproxy"
    # one record per HAProxy started; Ray's reloads replace the earlier ones
    haproxies = {int(p.stem) for p in records.glob("*.pid") if psutil.pid_exists(int(p.stem))}
    assert haproxies, list(records.iterdir())
    try:
        for proc in [psutil.Process(first.pid), *psutil.Process(first.pid).children(recursive=True)]:
            if proc.pid not in haproxies:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
        first.wait(timeout=30)
        time.sleep(2)
        orphans = [pid for pid in haproxies if psutil.pid_exists(pid)]
        assert orphans, "HAProxy died with the rest: nothing left behind to test"
        assert all(psutil.Process(pid).ppid() != first.pid for pid in orphans)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
    started = time.time()
    second = _start_service(world, log.parent, port, log)
    assert _healthy(port, second, 120), log.read_text()[-3000:]
    took = time.time() - started
    assert took < 120
    print(f"started again after a crash, beside another service: healthy after {took:.0f} s")
    assert not any(process_running(pid) for pid in orphans), orphans
    assert f"ending HAProxy pid {orphans[0]}" in log.read_text()
    refused = _start_service(world, log.parent, port, log.with_name("refused.log"))
    assert refused.wait(timeout=60) != 0
    assert f"port {port}: python -m serve_app already runs as pid {second.pid}" in log.with_name("refused.log").read_text()
    return second


def _uses_its_own_settings(proc: Any, port: int, listeners: tuple[int, int], log: Path, ticker: str) -> None:
    """Started from another directory: its own local Ray (never a recorded one), the replicas on
    the database it was started with, and the request lines in its own output; HAProxy in front,
    passing the client's address on, its metrics and stats on the ports it was given, on
    SERVE_HOST alone; live candles through it, one upstream subscription for two viewers."""
    assert _healthy(port, proc, 180, lambda health: health["database"] == "ok" and bool(health["models"]["1d"])), \
        log.read_text()[-3000:]
    for _ in range(3):
        httpx.get(f"http://127.0.0.1:{port}/api/symbols/search", params={"q": "zz"}, timeout=30)
    wanted = ('"path": "/api/symbols/search"', f"serving on http://127.0.0.1:{port}")
    deadline = time.time() + 90  # serve.run returns once every replica runs, after the first answers
    while not all(w in log.read_text() for w in wanted) and time.time() < deadline:
        time.sleep(1)
    assert all(w in log.read_text() for w in wanted), log.read_text()[-3000:]
    # the ingress of launcher.ray_env: HAProxy through the wrapper, which records each one
    assert list((_state(log, port) / "haproxy").glob("*.pid")), f"no HAProxy recorded: not started through {HAPROXY_WRAPPER}"
    # anonymous quotas count per client address through HAProxy (which must pass it on)
    ask = {"symbol": ticker, "timeframe": "1d", "num_steps": 2}
    for host in ("127.0.0.2", "127.0.0.3"):
        with httpx.Client(transport=httpx.HTTPTransport(local_address=host), timeout=60) as http:
            statuses = [http.post(f"http://127.0.0.1:{port}/api/predictions/generate", json=ask).status_code
                        for _ in range(ANONYMOUS_QUOTA + 1)]
            # a caller cannot pose as another address: HAProxy adds the one it saw, which wins
            spoofed = http.post(f"http://127.0.0.1:{port}/api/predictions/generate", json=ask,
                                headers={"X-Forwarded-For": "203.0.113.9"}).status_code
        assert statuses == [200] * ANONYMOUS_QUOTA + [429] and spoofed == 429, (host, statuses, spoofed)
    _two_live_viewers_share_one_upstream(port, ticker)
    metrics_port, stats_port = listeners
    assert httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{stats_port}/stats", timeout=10).status_code == 200
    for listener in listeners:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.2:{listener}/", timeout=10)


def _drains_on_sigterm(proc: Any, port: int, log: Path, ticker: str) -> None:
    """SIGTERM under 50 concurrent callers: the requests in flight complete, new ones get 503 with
    Retry-After (or, once its listener is gone, a refused connection: never a cut-off answer), it
    exits within 30 s, no process it started remains, and its terminal shows its own lines only."""
    processes = _service_processes(proc, _state(log, port))
    results, signalled, exited = _sigterm_under_load(proc, port, ticker)
    assert proc.returncode is not None, f"still running 30 s after SIGTERM\n{log.read_text()[-3000:]}"
    before = [r for r in results if r[1] < signalled]
    after = [r for r in results if r[1] >= signalled]
    # before the signal: answered, or (50 uncached forecasts at once on two cores can fill a
    # forecaster router's queue) shed as `overloaded` with Retry-After, the designed back-pressure
    shown = pd.Series([r[2] for r in before]).value_counts().to_dict()
    assert before and set(shown) <= {"200", "503 overloaded"} and shown.get("200", 0) > len(before) / 2, shown
    # in flight at the signal: answered; after it, 200 (admitted before the flag), 503 + Retry-After, or refused
    outcomes = pd.Series([r[2] for r in after]).value_counts().to_dict()
    assert set(outcomes) <= {"200", "503 stopping", "503 overloaded", "refused"}, outcomes
    assert all(r[3] for r in results if r[2].startswith("503")), "a 503 without Retry-After"
    assert outcomes.get("503 stopping", 0) > 0, outcomes
    print(f"SIGTERM under c=50: exited after {exited - signalled:.1f} s; answers before the signal {shown}, "
          f"after {outcomes}")
    time.sleep(3)
    left = _alive(processes)
    assert not left, f"processes the stopped service left: {left}"
    # the terminal: the service's own lines, none of Ray's, no colour codes (not a terminal)
    text = log.read_text()
    assert '"path": "/ml/predict"' in text and f"serving on http://127.0.0.1:{port}" in text, text[-3000:]
    assert "stopping: new requests get 503" in text and "stopped in" in text, text[-3000:]
    assert "cannot ask Serve" not in text, text[-3000:]
    if "still in flight" in text:  # the wait gave up: only right where a request outlived it
        from launcher.main import DRAIN_TIMEOUT_S
        assert any(r[2] == "200" and r[1] > signalled + DRAIN_TIMEOUT_S for r in after), text[-3000:]
    noise = [line for line in text.splitlines() if "\x1b[" in line or any(
        w in line for w in ("ServeController", "HAProxyManager", "ProxyActor", "(raylet)", "alembic"))]
    assert not noise, noise[:10]


def _free_service_port(taken: tuple[int, ...] = ()) -> int:
    """A SERVE_PORT whose derived ports (config.PORT_OFFSETS) are free too, and whose replicas'
    range differs from any `taken`'s."""
    import socket

    for _ in range(200):
        port = _free_port()
        if port + max(PORT_OFFSETS.values()) > 65535 or any(port % 100 == t % 100 for t in taken):
            continue
        try:
            for offset in (0, *PORT_OFFSETS.values()):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        return port
    raise AssertionError("no free SERVE_PORT with its derived ports free")


def _healthy(port: int, proc: Any, seconds: float,
             ready: Callable[[dict[str, Any]], bool] = lambda health: health["database"] == "ok") -> bool:
    """Whether /api/health satisfied `ready` within `seconds` while the service ran."""
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        try:
            if ready(httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).json()):
                return True
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(1)
    return False


def _service_processes(proc: Any, state: Path) -> dict[int, str]:
    """Every process `python -m serve_app` started (its tree, and each HAProxy in its own group)."""
    found = {c.pid: " ".join(c.cmdline())[:100] for c in psutil.Process(proc.pid).children(recursive=True)}
    for record in (state / "haproxy").glob("*.pid"):
        with contextlib.suppress(psutil.Error, ValueError):
            found[int(record.stem)] = " ".join(psutil.Process(int(record.stem)).cmdline())[:100]
    return found


def _alive(pids: dict[int, str]) -> dict[int, str]:
    return {pid: cmd for pid, cmd in pids.items() if process_running(pid)}


def _error_code(answer: httpx.Response) -> str:
    """The API's error code (`overloaded`, `stopping`, ...), or what came back instead of its shape."""
    try:
        return str(answer.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "not-the-error-shape"


def _sigterm_under_load(proc: Any, port: int, ticker: str) -> tuple[list[tuple[float, float, str, str | None]],
                                                                    float, float]:
    """SIGTERM to the service after 5 s of 50 callers; returns each request's (sent, answered,
    outcome, Retry-After), when the signal went and when the process had exited (or 30 s on)."""
    results: list[tuple[float, float, str, str | None]] = []
    stop = threading.Event()

    def caller() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    r = http.post("/ml/predict", json={"symbol": ticker, "timeframe": "1d", "num_steps": 5})
                    outcome = "200" if r.status_code == 200 else f"{r.status_code} {_error_code(r)}"
                    results.append((sent, time.monotonic(), outcome, r.headers.get("retry-after")))
                except httpx.ConnectError:
                    results.append((sent, time.monotonic(), "refused", None))
                    time.sleep(0.05)
                except httpx.HTTPError as exc:
                    results.append((sent, time.monotonic(), type(exc).__name__, None))

    with ThreadPoolExecutor(50) as pool:
        for _ in range(50):
            pool.submit(caller)
        time.sleep(5)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):  # the caller's assertion shows the log
            proc.wait(timeout=30)
        exited = time.monotonic()
        stop.set()
    return results, signalled, exited


def _live_health(port: int) -> dict[str, Any]:
    return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=30).json()["live"]


def _two_live_viewers_share_one_upstream(port: int, ticker: str) -> None:
    """Two WebSocket viewers of one symbol through HAProxy (the upgrade passes): live candles
    move, the cluster holds one upstream subscription; the second leaves, then the first, and
    the upstream unsubscribes."""
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{port}/api/ws/candles?symbol={ticker}&timeframe=1h"

    def candles(ws: Any, n: int) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        while len(got) < n:
            message = json.loads(ws.recv(timeout=30))
            assert message["type"] in ("status", "candle", "heartbeat"), message
            if message["type"] == "candle":
                got.append(message)
        return got

    with connect(url) as first, connect(url) as second:
        a, b = candles(first, 3), candles(second, 3)
        assert {m["symbol"] for m in a + b} == {ticker} and not any(m["closed"] for m in a + b)
        assert len({m["candle"]["close"] for m in a}) > 1  # it moves: the synthetic market's ticks
        assert _live_health(port)["upstream_subscriptions"] == 1
        second.close()
        candles(first, 2)
        assert _live_health(port)["upstream_subscriptions"] == 1
    deadline = time.time() + 60  # the replica's linger (10 s), then the relay's (5 s)
    while _live_health(port)["upstream_subscriptions"] != 0 and time.time() < deadline:
        time.sleep(1)
    # what each API replica says (health is answered by either): which one still counts it
    seen = [_live_health(port) for _ in range(6)]
    assert all(h["upstream_subscriptions"] == 0 for h in seen), seen
