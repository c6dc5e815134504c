"""Benchmark the live candles: many WebSocket viewers over many symbols, through `python -m
serve_app` (HAProxy, two Api replicas, the LiveStream relay) and through a plain single-process
app (uvicorn, the hub on the market socket directly) in the same run, on the same market.

The market is Massive's, on loopback: its REST answers (tests/fake_massive.py) seed the forming
candles and its socket (tests/fake_massive_socket.py) sends one per-second aggregate per
subscribed pair. Every aggregate's close is new, so a viewer's candle message names the
aggregate it shows: tick-to-viewer latency is the time from the socket's send to the viewer's
receipt (one clock, one machine), over the aggregates sent inside the measured window, which
opens 5 s after the last viewer joined. An aggregate a viewer never saw (coalesced within the
hub's `flush_s`, replaced in a slow socket's outbox, or lost) counts as not delivered.

    .venv/bin/python -m bench.stream [--viewers 1000] [--symbols 100] [--seconds 30] [--dump PATH]

The viewers run in two processes of their own (`--viewer-procs`) on the same two cores as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.measure import tree_rss

PLAIN_APP = """
import os, uvicorn
from config import load_settings
from serve_app.app import create_app
from serve_app.wiring import build_service
from storage.migrate import migration_url, upgrade
upgrade(migration_url(load_settings()))
services = build_service(load_settings(), cache_prefix="bench:stream:")
app = create_app(services.predictions, services.accounts, services.billing,
                 portfolio=services.portfolio, live_market=services.live)
uvicorn.run(app, host="127.0.0.1", port=int(os.environ["BENCH_PORT"]), log_level="warning")
"""
KEY = "bench-key"
OPENING = 50  # WebSocket handshakes in flight at once while the viewers arrive
SETTLE_S = 5.0  # after the last viewer joined, before measuring (the server's memory is read meanwhile)


# -- the viewers' process ------------------------------------------------------------------------
async def _watch(url: str, symbols: list[str], first: int, n: int, seconds: float) -> dict[str, Any]:
    """Open sockets `first` .. `first + n - 1` (symbol i % len(symbols)), say READY, wait for GO
    on stdin, keep reading `seconds`, then report every forming-candle message as (symbol,
    close, receipt time)."""
    import websockets

    rows: list[tuple[str, float, float]] = []
    errors: Counter[str] = Counter()
    opening = asyncio.Semaphore(OPENING)
    sockets: list[Any] = []

    async def read(ws: Any, symbol: str) -> None:
        try:
            async for raw in ws:
                received = time.time()
                message = json.loads(raw)
                if message["type"] == "candle" and not message["closed"]:
                    rows.append((symbol, message["candle"]["close"], received))
                elif message["type"] == "error":
                    errors[message["error"]["code"]] += 1
        except websockets.ConnectionClosed as exc:
            errors[f"closed {exc.rcvd.code if exc.rcvd else 'abnormally'}"] += 1

    async def one(i: int) -> asyncio.Task[None] | None:
        symbol = symbols[i % len(symbols)]
        async with opening:
            try:
                ws = await websockets.connect(f"{url}?symbol={symbol}&timeframe=1h", open_timeout=120, max_queue=None)
            except Exception as exc:  # counted, not fatal: a refused viewer is a result
                errors[type(exc).__name__] += 1
                return None
        sockets.append(ws)
        return asyncio.ensure_future(read(ws, symbol))

    started = time.time()
    readers = [t for t in await asyncio.gather(*(one(i) for i in range(first, first + n))) if t is not None]
    print(f"READY {len(readers)} {time.time() - started:.1f}", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # GO: every viewers' process has its sockets open
    ramp = time.time() - started
    await asyncio.sleep(SETTLE_S)
    window = (time.time(), time.time() + seconds)
    await asyncio.sleep(seconds + 2)  # an aggregate sent at the window's end may arrive after it
    for ws in sockets:
        await ws.close()
    await asyncio.gather(*readers, return_exceptions=True)
    return {"connected": len(readers), "ramp_s": ramp, "window": window,
            "errors": dict(errors), "rows": [r for r in rows if window[0] <= r[2]]}


# -- one server under load -----------------------------------------------------------------------
def _wait_live(base: str, proc: subprocess.Popen[bytes], seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            # "connecting" until aggregates flow: the official client passes on data, not its
            # status messages, and nothing flows before the first viewer subscribes
            if httpx.get(f"{base}/api/health", timeout=5).json()["live"]["state"] in ("connecting", "connected"):
                return
        except Exception:
            pass
        time.sleep(1)
    raise SystemExit(f"{base} did not answer with its live market in {seconds:.0f} s")


@dataclass(frozen=True)
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    port: int


@dataclass(frozen=True)
class Load:
    """What every server gets: the viewers (`args`), the symbols, the market socket, a folder."""

    args: argparse.Namespace
    symbols: list[str]
    socket: Any
    workdir: Path


def _run_server(server: Server, load: Load) -> dict[str, Any]:
    from market_data.massive_stream import pair_of

    name, cmd, env, port = server.name, server.cmd, server.env, server.port
    args, symbols, socket, workdir = load.args, load.symbols, load.socket, load.workdir
    base = f"http://127.0.0.1:{port}"
    log = open(workdir / f"{name.replace(' ', '_')}.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            _wait_live(base, proc)
        except SystemExit:
            log.flush()
            print((workdir / f"{name.replace(' ', '_')}.log").read_text()[-4000:], file=sys.stderr)
            raise
        root = psutil.Process(proc.pid)
        time.sleep(5)
        idle_rss = tree_rss(root)
        procs = []
        for k in range(args.viewer_procs):  # viewers are many machines: more than one process of them
            share = args.viewers // args.viewer_procs + (k < args.viewers % args.viewer_procs)
            first = sum(p[1] for p in procs)
            out = workdir / f"{name.replace(' ', '_')}_{k}.json"
            procs.append((subprocess.Popen(
                [sys.executable, "-m", "bench.stream", "--watch", f"ws://127.0.0.1:{port}/api/ws/candles",
                 "--first", str(first), "--viewers", str(share), "--seconds", str(args.seconds), "--out", str(out),
                 "--symbol-list", ",".join(symbols)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True),
                share, out))
        for viewers, _, _ in procs:
            assert viewers.stdout is not None and viewers.stdin is not None
            viewers.stdout.readline()  # READY
        for viewers, _, _ in procs:
            viewers.stdin.write("GO\n")  # type: ignore[union-attr]
            viewers.stdin.flush()  # type: ignore[union-attr]
        time.sleep(SETTLE_S / 3)
        loaded_rss = tree_rss(root)
        health = httpx.get(f"{base}/api/health", timeout=30).json()["live"]
        upstream_topics = socket.active_topics()
        parts = []
        for viewers, _, out in procs:
            viewers.wait(timeout=args.seconds + 300)
            parts.append(json.loads(out.read_text()))
        window = (max(p["window"][0] for p in parts), min(p["window"][1] for p in parts))
        report = {"connected": sum(p["connected"] for p in parts), "ramp_s": max(p["ramp_s"] for p in parts),
                  "window": window, "errors": dict(sum((Counter(p["errors"]) for p in parts), Counter())),
                  "rows": [r for p in parts for r in p["rows"] if window[0] <= r[2]]}
    finally:
        os.killpg(proc.pid, 2)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()
    sent_at = dict(socket.sent_at)  # one copy: the socket's thread goes on adding to it
    start, end = report["window"]
    latencies, delivered = [], 0
    series: list[tuple[float, float, str]] = []
    for symbol, close, received in report["rows"]:
        sent = sent_at.get((pair_of(symbol), close))
        if sent is not None and start <= sent <= end - 1:  # the aggregates sent inside the window
            latencies.append((received - sent) * 1000)
            delivered += 1
            if args.dump:
                series.append((sent, received - sent, symbol))
    sent_in_window = Counter(pair for (pair, _), at in sent_at.items() if start <= at <= end - 1)
    per_symbol_viewers = Counter(symbols[i % len(symbols)] for i in range(report["connected"]))
    expected = sum(sent_in_window[pair_of(s)] * v for s, v in per_symbol_viewers.items())
    if args.dump:
        Path(f"{args.dump}.{name.replace(' ', '_')}.json").write_text(json.dumps(series))
    latencies.sort()
    return {"name": name, "connected": report["connected"], "ramp_s": report["ramp_s"], "errors": report["errors"],
            "health": health, "upstream_topics": upstream_topics,
            "rss_per_viewer_kib": (loaded_rss - idle_rss) / max(report["connected"], 1) / 1024,
            "idle_rss_mib": idle_rss / 2**20, "loaded_rss_mib": loaded_rss / 2**20,
            "messages": sum(start <= r[2] <= end for r in report["rows"]), "delivered": delivered, "expected": expected,
            "p50": statistics.median(latencies) if latencies else float("nan"),
            "p99": latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
            "max": latencies[-1] if latencies else float("nan"), "seconds": end - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the load is measured, per server")
    parser.add_argument("--only", choices=("serve", "plain"), help="measure one server only")
    parser.add_argument("--viewer-procs", type=int, default=2, help="processes the viewers are spread over")
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--dump", help="write each delivered update's (sent, latency s, symbol) to DUMP.<server>.json")
    parser.add_argument("--watch", help=argparse.SUPPRESS)  # the viewers' process
    parser.add_argument("--symbol-list", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.watch:
        report = asyncio.run(_watch(args.watch, args.symbol_list.split(","), args.first, args.viewers, args.seconds))
        Path(args.out).write_text(json.dumps(report))
        return

    from bench.scratch_db import scratch_database
    from market_data.synthetic import SyntheticMarket
    from storage.db import make_engine, session_scope
    from storage.schema import Symbol
    from tests.fake_massive import FakeMassive
    from tests.fake_massive_socket import FakeMassiveSocket

    market = SyntheticMarket(seed=7, n_coins=args.symbols * 2)
    symbols = [t.ticker for t in market.list_tickers()][: args.symbols]
    if len(symbols) < args.symbols:
        raise SystemExit(f"the synthetic market lists {len(symbols)} coins, fewer than --symbols {args.symbols}")
    socket = FakeMassiveSocket(key=KEY, interval_s=1.0, start=1000.0, step=0.01, record=True)
    ws_port = socket.serve_in_thread()
    results = []
    with scratch_database("bench_stream") as url, FakeMassive(market, api_key=KEY) as rest, \
            tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(url)
        with session_scope(engine) as s:
            s.add_all(Symbol(ticker=t, name=t, volume_rank=rank) for rank, t in enumerate(symbols, 1))
        engine.dispose()
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update({"MARKET_SOURCE": "massive", "MASSIVE_API_KEY": KEY, "MASSIVE_API_BASE": rest.base,
                    "MASSIVE_WS_BASE": f"ws://127.0.0.1:{ws_port}", "DATABASE_URL": url,
                    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
                    "MODEL_DIR": f"{tmp}/models", "DATA_DIR": f"{tmp}/data", "RAY_USAGE_STATS_ENABLED": "0",
                    "LIVE_MAX_SOCKETS": str(args.viewers + 100), "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        servers = [("ray serve", [sys.executable, "-m", "serve_app"], {"SERVE_PORT": "18010"}, 18010),
                   ("plain app", [sys.executable, "-c", PLAIN_APP], {"BENCH_PORT": "18011"}, 18011)]
        for name, cmd, extra, port in servers:
            if args.only and args.only not in name:
                continue
            print(f"{name}: starting, then {args.viewers} viewers over {args.symbols} symbols for {args.seconds:.0f} s",
                  flush=True)
            results.append(_run_server(Server(name, cmd, {**env, **extra}, port), Load(args, symbols, socket, Path(tmp))))
    print(f"\n{'server':<10} {'viewers':>7} {'ramp s':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'msgs/s':>7} {'not delivered':>13} {'upstream':>8} {'KiB/viewer':>10} errors")
    for r in results:
        missing = max(r["expected"] - r["delivered"], 0) / max(r["expected"], 1)
        upstream = f"{r['health']['upstream_subscriptions']}/{r['upstream_topics']}"
        print(f"{r['name']:<10} {r['connected']:>7} {r['ramp_s']:>6.1f} {r['p50']:>7.1f} {r['p99']:>7.1f} "
              f"{r['max']:>7.1f} {r['messages'] / r['seconds']:>7.0f} {missing:>12.2%} {upstream:>8} "
              f"{r['rss_per_viewer_kib']:>10.1f} {r['errors'] or '-'}")
    print("\nupstream: subscriptions the service reports / subscriptions open on the market socket; "
          "KiB/viewer: growth of the server's whole process tree (RSS) from idle to loaded, per viewer")


if __name__ == "__main__":
    main()
