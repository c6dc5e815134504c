"""Benchmark the HTTP service: latency p50/p95/p99 and requests per second for cached predictions,
uncached predictions (distinct symbols, `/ml/predict`) and search, at concurrency 1, 8, 32 and 100,
through Ray Serve and through a plain single-process app (uvicorn) calling the same forecaster,
in the same run, on the same database, cache and model. The forecast scenarios run anonymously
and signed in (`+auth`: a Bearer token, so each request also looks its session up), and the
cost of counting one quota call is timed on its own against a bare database round trip.

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
from storage.migrate import migration_url, upgrade
upgrade(migration_url(load_settings()))
services = build_service(load_settings(), cache_prefix="bench:plain:")
app = create_app(services.predictions, services.accounts, services.billing,
                 portfolio=services.portfolio)
app.state.versions = services.models.versions
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
        except Exception:
            pass
        time.sleep(1)
    raise SystemExit(f"{base} did not come up")


CONCURRENCY = (1, 8, 32, 100)
UNCACHED_MAX_CONCURRENCY = 32


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


def _quantiles_ms(fn, n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    q = statistics.quantiles(times, n=100)
    return {"p50": q[49], "p99": q[98]}


def _quota_cost(env: dict[str, str], n: int = 2000) -> dict[str, dict[str, float]]:
    """Counting one call (the upsert) and authenticating a token, against `SELECT 1`."""
    import sqlalchemy as sa

    from accounts.service import AccountService, Caller
    from config import load_settings
    from storage.cache import make_cache
    from storage.db import make_engine

    settings = load_settings(env)
    engine = make_engine(settings.database_url)
    accounts = AccountService(engine, make_cache(settings.redis_url, "bench:quota:"), settings.accounts)
    email = f"bench-{os.getpid()}-{time.time_ns()}@example.com"
    accounts.register(email, "bench password")
    signed = accounts.login(email, "bench password")
    user, anonymous = Caller(signed.account, "bench"), Caller(None, f"bench-{time.time_ns()}")

    def round_trip() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    figures = {"SELECT 1 (baseline)": _quantiles_ms(round_trip, n),
               "count a user's call": _quantiles_ms(lambda: accounts.charge(user), n),
               "count an anonymous call": _quantiles_ms(lambda: accounts.charge(anonymous), n),
               "authenticate a token": _quantiles_ms(lambda: accounts.authenticate(signed.token), n)}
    engine.dispose()
    return figures


def _bearer(base: str, tag: str) -> dict[str, str]:
    email = f"bench-{tag}-{time.time_ns()}@example.com"
    httpx.post(f"{base}/api/auth/register", json={"email": email, "password": "bench password"}, timeout=60)
    token = httpx.post(f"{base}/api/auth/login", json={"email": email, "password": "bench password"},
                       timeout=60).json()["token"]
    return {"Authorization": f"Bearer {token}"}


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
               "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
               # the load comes from one address and one account: quotas must not refuse it
               "QUOTA_ANONYMOUS": "1000000000", "QUOTA_FREE": "1000000000"}
        subprocess.run([sys.executable, "-m", "jobs.weekly_training", "--top", str(args.symbols), "--timeframes", "1d",
                        "--no-ray", "--n-estimators", "60", "--max-depth", "6", "--epochs", "5", "--origins", "100",
                        "--model", args.model], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        from market_data.universe import top_symbols
        from storage.db import make_engine

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
                auth = _bearer(base, name.replace(" ", "-"))
                for conc in CONCURRENCY:
                    for tag, headers in (("", {}), ("+auth", auth)):
                        results[(name, "cached" + tag, conc)] = _load(
                            base, lambda h, i, hd=headers: h.post("/api/predictions/generate", headers=hd,
                                                                  json={"symbol": symbols[0], "timeframe": "1d"}),
                            max(args.requests, conc * 5), conc)
                        if conc > UNCACHED_MAX_CONCURRENCY:
                            continue  # 100 forecasts at once on two cores only measures the queue
                        results[(name, "uncached" + tag, conc)] = _load(
                            base, lambda h, i, hd=headers: h.post("/ml/predict", headers=hd,
                                                                  json={"symbol": symbols[i % len(symbols)],
                                                                        "timeframe": "1d"}),
                            max(conc * 2, args.requests // 4), conc)
                    results[(name, "search", conc)] = _load(
                        base, lambda h, i: h.get("/api/symbols/search", params={"q": symbols[i % len(symbols)][2:4]}),
                        max(args.requests, conc * 5), conc)
            finally:
                proc.send_signal(2)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        quota = _quota_cost(env)
    print(f"{'scenario':<14} {'conc':>4} | {'server':<10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8} "
          f"{'failed':>6} | serve/plain req/s")
    for scenario in ("cached", "cached+auth", "uncached", "uncached+auth", "search"):
        for conc in CONCURRENCY:
            pair = [(name, results.get((name, scenario, conc))) for name in ("ray serve", "plain app")]
            if any(r is None for _, r in pair):
                continue
            ratio = pair[0][1]["rps"] / pair[1][1]["rps"]
            for k, (name, r) in enumerate(pair):
                print(f"{scenario if k == 0 else '':<14} {conc if k == 0 else '':>4} | {name:<10} {r['p50']:>8.1f} "
                      f"{r['p95']:>8.1f} {r['p99']:>8.1f} {r['rps']:>8.1f} {r['failed']:>6} | "
                      + (f"{ratio:.2f}" if k == 0 else ""))
    print(f"\n{'quota accounting (in process)':<32} {'p50 ms':>8} {'p99 ms':>8}")
    for what, r in quota.items():
        print(f"{what:<32} {r['p50']:>8.3f} {r['p99']:>8.3f}")


if __name__ == "__main__":
    main()
