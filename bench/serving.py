"""Benchmark the HTTP service: latency p50/p95/p99 and requests per second for cached predictions,
uncached predictions (distinct symbols, `/ml/predict`) and search, at concurrency 1, 8 and 32,
through Ray Serve and through a plain single-process app (uvicorn) calling the same forecaster,
in the same run, on the same database, cache and model.

    .venv/bin/python -m bench.serving [--requests 200] [--model xgboost|ensemble]

It trains a small 1d model (recursive XGBoost or the direct ensemble) on the synthetic market
first (a minute or two).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

PLAIN_APP = """
import os, uvicorn
from config import load_settings
from serve_app.app import create_app
from serve_app.wiring import build_service
service, models = build_service(load_settings(), cache_prefix="bench:plain:")
app = create_app(service)
app.state.versions = models.versions
uvicorn.run(app, host="127.0.0.1", port=int(os.environ["BENCH_PORT"]), log_level="warning")
"""


def _wait(base: str, proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/api/health", timeout=5).json()["models"]["1d"]:
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(1)
    raise SystemExit(f"{base} did not come up")


def _load(base: str, make_request, total: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        nonlocal failures
        with httpx.Client(base_url=base, timeout=120) as http:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                started = time.perf_counter()
                response = make_request(http, i)
                ms = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(ms)
                    failures += response.status_code != 200

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(worker)
    wall = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {"p50": q[49], "p95": q[94], "p99": q[98], "rps": len(latencies) / wall, "failed": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="requests per scenario and concurrency")
    parser.add_argument("--symbols", type=int, default=40)
    parser.add_argument("--model", default="xgboost", help="what weekly_training trains: xgboost (recursive) or "
                                                          "ensemble (direct: one feature pass per forecast)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MARKET_SOURCE": "synthetic", "DATA_DIR": f"{tmp}/data", "MODEL_DIR": f"{tmp}/models",
               "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{tmp}/app.db"),
               "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")}
        subprocess.run([sys.executable, "-m", "jobs.weekly_training", "--top", str(args.symbols), "--timeframes", "1d",
                        "--no-ray", "--n-estimators", "60", "--max-depth", "6", "--epochs", "5", "--origins", "100",
                        "--model", args.model], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        from storage.db import make_engine
        from market_data.universe import top_symbols

        symbols = top_symbols(make_engine(env["DATABASE_URL"]), args.symbols)
        results = {}
        for name in ("ray serve", "plain app"):
            port = 18000 + (name == "plain app")
            base = f"http://127.0.0.1:{port}"
            if name == "ray serve":
                cmd = [sys.executable, "-m", "serve_app"]
                server_env = {**env, "SERVE_PORT": str(port)}
            else:
                cmd = [sys.executable, "-c", PLAIN_APP]
                server_env = {**env, "BENCH_PORT": str(port)}
            proc = subprocess.Popen(cmd, env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                _wait(base, proc)
                httpx.post(f"{base}/ml/predict", json={"symbol": symbols[0], "timeframe": "1d"}, timeout=120)
                for conc in (1, 8, 32):
                    results[(name, "cached", conc)] = _load(
                        base, lambda h, i: h.post("/api/predictions/generate",
                                                  json={"symbol": symbols[0], "timeframe": "1d"}), args.requests, conc)
                    results[(name, "uncached", conc)] = _load(
                        base, lambda h, i: h.post("/ml/predict", json={"symbol": symbols[i % len(symbols)],
                                                                        "timeframe": "1d"}),
                        max(conc * 2, args.requests // 4), conc)
                    results[(name, "search", conc)] = _load(
                        base, lambda h, i: h.get("/api/symbols/search", params={"q": symbols[i % len(symbols)][2:4]}),
                        args.requests, conc)
            finally:
                proc.send_signal(2)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print(f"{'server':<10} {'scenario':<9} {'conc':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8} {'failed':>6}")
    for (name, scenario, conc), r in results.items():
        print(f"{name:<10} {scenario:<9} {conc:>4} {r['p50']:>8.1f} {r['p95']:>8.1f} {r['p99']:>8.1f} "
              f"{r['rps']:>8.1f} {r['failed']:>6}")


if __name__ == "__main__":
    main()
