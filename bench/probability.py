"""Benchmark `GET /api/predictions/{id}/probability` on a cached forecast (goal p50 < 20 ms), over
HTTP on uvicorn with PostgreSQL and Redis: the touch question at a new level each time (the
forecast's distribution cached, its paths drawn once per process, the answer computed), the same
question again (the answer cached), and `?above=` (one step's quantiles, no paths). Baseline in
the same run: `GET /api/predictions/{id}` of the same forecast (a plain read of the stored answer).

    .venv/bin/python -m bench.probability [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time
import uuid
from datetime import datetime, timezone

import httpx
import numpy as np
import pandas as pd
import uvicorn

from accounts.service import AccountService
from bench.scratch_db import scratch_database
from billing.service import BillingService
from config import load_settings
from mail.sender import EmailNotifier
from market_data.synthetic import SyntheticMarket
from portfolio.service import Portfolio
from predictions.market import MarketView
from predictions.service import PredictionService
from risk.distribution import Z_LEVELS
from serve_app.app import create_app
from storage.cache import RedisCache
from storage.db import make_engine, session_scope
from storage.registry import ModelRegistry
from storage.schema import ModelRecord, Symbol
from training.forecast import Forecast, ForecastStep

NOW = datetime(2026, 3, 10, 22, 0, tzinfo=timezone.utc)
STEPS = 30


def random_walk_forecast(model_id: uuid.UUID):  # type: ignore[no-untyped-def]
    """A flat forecast whose distribution is a random walk's (3 % a day), as naive's would be."""
    def forecast(timeframe: str, candles: pd.DataFrame, steps: int) -> Forecast:
        last = float(candles["close"].iloc[-1])
        start = pd.Timestamp(candles["timestamp"].iloc[-1]) + pd.Timedelta(days=1)
        rows = []
        for i in range(steps):
            q = tuple(float(last * np.exp(0.03 * np.sqrt(i + 1) * z)) for z in Z_LEVELS)
            rows.append(ForecastStep(step=i + 1, timestamp=start + pd.Timedelta(days=i), open=last, high=last, low=last,
                                     close=last, lower=q[1], upper=q[5], confidence=0.5, direction="flat",
                                     naive_lower=q[1], naive_upper=q[5], quantiles=q))
        return Forecast(direction="flat", confidence_avg=0.5, key_indicators=[], steps=rows, model_id=str(model_id),
                        model_version="v-bench")
    return forecast


def timed(client: httpx.Client, paths: list[str]) -> list[float]:
    out = []
    for path in paths:
        started = time.perf_counter()
        answer = client.get(path)
        out.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text
    return out


def percentiles(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {"p50": round(statistics.median(ordered), 2), "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
            "p99": round(ordered[int(0.99 * (len(ordered) - 1))], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with scratch_database("bench_probability") as url:
        engine = make_engine(url)
        market = SyntheticMarket(seed=7, n_coins=2, now=NOW.replace(tzinfo=None))
        ticker = market.list_tickers()[0].ticker
        with session_scope(engine) as s:
            s.add(Symbol(ticker=ticker, name=ticker, volume_rank=1))
            model = ModelRecord(timeframe="1d", version="v-bench", training_start=datetime(2025, 1, 1),
                                training_end=datetime(2026, 1, 1), num_symbols=1, model_path="/nowhere",
                                is_active=True, trained_at=datetime(2026, 1, 2))
            s.add(model)
            model_id = model.id
        cache = RedisCache("redis://127.0.0.1:6379/0", prefix=f"bench-probability-{uuid.uuid4().hex[:8]}:")
        settings = load_settings({"DATABASE_URL": url})
        predictions = PredictionService(engine, cache, MarketView(engine, cache, market, lambda tf: 20, lambda: NOW),
                                        ModelRegistry(engine, "/unused"), random_walk_forecast(model_id))
        app = create_app(predictions, AccountService(engine, cache, settings.accounts, clock=lambda: NOW,
                                                     mail=EmailNotifier(settings.email)),
                         BillingService(engine, settings.billing, clock=lambda: NOW),
                         portfolio=Portfolio.on(engine, settings.limits, lambda: NOW))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                answer = client.post("/api/predictions/generate", json={"symbol": ticker, "timeframe": "1d"}).json()
                pid, last = answer["prediction_id"], answer["steps"][0]["open"]
                base = f"/api/predictions/{pid}"
                timed(client, [base, f"{base}/probability?touch={last * 1.01}&within=30"] * 5)  # warm: paths drawn
                n = args.requests
                results = {
                    "read (baseline)": timed(client, [base] * n),
                    "touch, new level": timed(client, [f"{base}/probability?touch={last * (1.02 + i * 1e-4)}&within="
                                                       f"{1 + i % 30}" for i in range(n)]),
                    "touch, asked before": timed(client, [f"{base}/probability?touch={last * 1.02}&within=1"] * n),
                    "above, new level": timed(client, [f"{base}/probability?above={last * (0.9 + i * 1e-4)}&step="
                                                       f"{1 + i % 30}" for i in range(n)]),
                }
        finally:
            server.should_exit = True
            engine.dispose()
    report = {name: percentiles(ms) for name, ms in results.items()}
    print(f"{'request':<22} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}   ({args.requests} sequential requests each)")
    for name, figures in report.items():
        print(f"{name:<22} {figures['p50']:>8.2f} {figures['p90']:>8.2f} {figures['p99']:>8.2f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
