"""Benchmark `jobs.track_accuracy`: score 100,000 stored forecast steps (100 synthetic symbols,
1d, 30 steps each, every candle closed) on the database in BENCH_DATABASE_URL (default: a
PostgreSQL database this run creates and drops), counting market-data requests. The baseline,
in the same run, is the plain way: one request and one UPDATE per step, timed on a sample and
scaled to the same number of steps.

    .venv/bin/python -m bench.accuracy [--steps 100000] [--baseline-sample 600]
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from contextlib import nullcontext
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from accuracy.tracker import track
from bench.counting import CountingSource
from bench.scratch_db import scratch_database
from market_data.synthetic import SyntheticMarket
from storage.db import make_engine, session_scope
from storage.migrate import upgrade
from storage.schema import ModelRecord, Prediction, PredictionStep, Symbol

NOW = datetime(2025, 10, 1, tzinfo=timezone.utc)
STEPS = 30


def _populate(engine: sa.engine.Engine, market: SyntheticMarket, n_steps: int) -> None:
    tickers = [t.ticker for t in market.list_tickers()][:100]
    per_symbol = max(1, -(-n_steps // (STEPS * len(tickers))))  # rounded up: at least n_steps
    model = ModelRecord(timeframe="1d", version="bench", training_start=datetime(2024, 1, 1),
                        training_end=datetime(2025, 1, 1), num_symbols=100, model_path="/bench", is_active=True,
                        trained_at=datetime(2025, 1, 2))
    with session_scope(engine) as s:
        symbols = [Symbol(ticker=t, name=t) for t in tickers]
        s.add_all([*symbols, model])
    origin_day = NOW.replace(tzinfo=None) - timedelta(days=STEPS + per_symbol + 2)
    predictions, steps = [], []
    for sym in symbols:
        closes = market.aggregates(sym.ticker, "1d", origin_day - timedelta(days=2), NOW)
        by_day = dict(zip(closes["timestamp"].dt.tz_convert(None), closes["close"]))
        for k in range(per_symbol):
            start = origin_day + timedelta(days=k)
            origin = by_day.get(start - timedelta(days=1), 1.0)
            pid = uuid.uuid4()
            predictions.append({"id": pid, "symbol_id": sym.id, "timeframe": "1d", "model_id": model.id,
                                "prediction_date": start, "predict_until": start + timedelta(days=STEPS - 1),
                                "num_steps": STEPS, "direction": "up", "created_at": start})
            for h in range(STEPS):
                steps.append({"id": uuid.uuid4(), "prediction_id": pid, "step_number": h + 1,
                              "timestamp": start + timedelta(days=h), "open": origin, "high": origin * 1.02,
                              "low": origin * 0.98, "close": origin * 1.001, "lower": origin * 0.9,
                              "upper": origin * 1.1, "confidence": 0.55, "direction": "up"})
    with engine.begin() as conn:
        conn.execute(Prediction.__table__.insert(), predictions)
        for i in range(0, len(steps), 20000):
            conn.execute(PredictionStep.__table__.insert(), steps[i:i + 20000])


def _baseline(engine: sa.engine.Engine, market: SyntheticMarket, sample: int) -> tuple[float, int]:
    """One request and one UPDATE per step, the way a first version would do it."""
    s, p, sym = PredictionStep.__table__, Prediction.__table__, Symbol.__table__
    with engine.connect() as conn:
        rows = conn.execute(sa.select(s.c.id, s.c.timestamp, sym.c.ticker).join(p, p.c.id == s.c.prediction_id)
                            .join(sym, sym.c.id == p.c.symbol_id).limit(sample)).all()
    started = time.perf_counter()
    for step_id, ts, ticker in rows:
        when = ts.replace(tzinfo=timezone.utc)
        candle = market.aggregates(ticker, "1d", when, when + timedelta(days=1))
        close = float(candle["close"].iloc[0])
        with engine.begin() as conn:
            conn.execute(s.update().where(s.c.id == step_id).values(actual_close=close))
    return time.perf_counter() - started, len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--baseline-sample", type=int, default=600)
    args = parser.parse_args()
    given = os.environ.get("BENCH_DATABASE_URL")
    with nullcontext(given) if given else scratch_database("bench_accuracy") as url:
        upgrade(url)
        engine = make_engine(url)
        market = SyntheticMarket(seed=7, n_coins=600, now=NOW.replace(tzinfo=None))
        t = time.perf_counter()
        _populate(engine, market, args.steps)
        with engine.connect() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(PredictionStep.__table__)).scalar()
        print(f"stored {n} steps in {time.perf_counter() - t:.1f}s", flush=True)
        base_s, base_n = _baseline(engine, market, args.baseline_sample)
        with engine.begin() as conn:  # undo the baseline's writes
            conn.execute(PredictionStep.__table__.update().values(actual_close=None, is_accurate=None))
        source = CountingSource(market)
        report = track(engine, source, None, NOW)
        again = track(engine, source, None, NOW)
        pairs = report.pairs
        print(f"\ntrack_accuracy on {n} stored steps ({datetime.now(timezone.utc):%Y-%m-%d}, PostgreSQL, 1d, "
              f"{pairs} symbols)")
        print(f"{'':<34} {'seconds':>9} {'requests':>9} {'steps':>8}")
        print(f"{'tracker':<34} {report.seconds:>9.1f} {report.requests:>9} {report.filled:>8}")
        print(f"{'tracker, re-run (nothing new)':<34} {again.seconds:>9.1f} {again.requests:>9} "
              f"{again.filled:>8}")
        scaled = base_s / base_n * n
        print(f"{'baseline, per step (sample)':<34} {base_s:>9.1f} {base_n:>9} {base_n:>8}")
        print(f"{'baseline scaled to all steps':<34} {scaled:>9.0f} {n:>9} {n:>8}")
        print(f"goal: one request per symbol and timeframe ({pairs}), under 60 s: "
              f"{'met' if report.requests <= pairs and report.seconds < 60 else 'MISSED'}")
        engine.dispose()


if __name__ == "__main__":
    main()
