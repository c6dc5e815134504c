"""Benchmark the track record's ledger on PostgreSQL: what an entry adds to an uncached forecast's
store (p50, goal < 2 ms), and how fast `jobs.verify_ledger` recomputes the chain (goal >= 20,000
entries per second). Baselines in the same run: the store without its entry (the same writes,
the entry left out, interleaved with the real ones), and the hashes recomputed alone from the
same forecasts in memory (no database).

    .venv/bin/python -m bench.ledger [--stores 300] [--entries 20000]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from bench.scratch_db import scratch_database
from predictions import ledger
from predictions.market import MarketView
from predictions.service import PredictionService
from storage.cache import MemoryCache
from storage.db import make_engine, session_scope
from storage.registry import ModelRegistry
from storage.schema import LedgerEntry, ModelRecord, Prediction, PredictionStep, Symbol
from training.forecast import Forecast, ForecastStep

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
STEPS = 30


def forecast_of(model: ModelRecord, rng: np.random.Generator) -> Forecast:
    last = float(rng.uniform(0.001, 60_000))
    closes = last * np.exp(np.cumsum(rng.normal(0, 0.01, STEPS)))
    start = pd.Timestamp(NOW).floor("D") + pd.Timedelta(days=1)
    return Forecast(direction="up", confidence_avg=0.55, key_indicators=["rsi_14"], model_id=str(model.id),
                    model_version=model.version,
                    steps=[ForecastStep(step=i + 1, timestamp=start + pd.Timedelta(days=i), open=float(c), high=float(c),
                                        low=float(c), close=float(c), lower=float(c) * 0.95, upper=float(c) * 1.05,
                                        confidence=0.55, direction="up") for i, c in enumerate(closes)])


def store_cost(url: str, symbol: Symbol, model: ModelRecord, stores: int) -> tuple[list[float], list[float]]:
    """Milliseconds of `_persist` with its ledger entry and without it, interleaved."""
    engine = make_engine(url)
    cache = MemoryCache()
    service = PredictionService(engine, cache, MarketView(engine, cache, None, lambda tf: 20, lambda: NOW),  # type: ignore[arg-type]
                                ModelRegistry(engine, "/unused"), lambda *a: forecast_of(model, np.random.default_rng()))
    rng = np.random.default_rng(0)
    real_append = ledger.append
    with_entry, without = [], []
    for i in range(stores * 2):
        entered = i % 2 == 0
        ledger.append = real_append if entered else (lambda conn, record: None)  # type: ignore[assignment,misc]
        result = forecast_of(model, rng)
        started = time.perf_counter()
        service._persist(symbol, "1d", result, NOW + timedelta(seconds=i))
        (with_entry if entered else without).append((time.perf_counter() - started) * 1000)
    ledger.append = real_append
    engine.dispose()
    return with_entry, without


def fill(url: str, symbol: Symbol, model: ModelRecord, entries: int) -> list[ledger.Record]:
    """`entries` stored forecasts and their chain, written in bulk (as many stores would)."""
    engine = make_engine(url)
    rng = np.random.default_rng(1)
    records, prev = [], ledger.GENESIS
    for first in range(0, entries, 2000):
        preds, steps, rows = [], [], []
        for seq in range(first + 1, min(entries, first + 2000) + 1):
            result = forecast_of(model, rng)
            pid, made = uuid.uuid4(), (NOW + timedelta(seconds=seq)).replace(tzinfo=None)
            preds.append({"id": pid, "symbol_id": symbol.id, "timeframe": "1d", "model_id": model.id,
                          "prediction_date": made, "predict_until": made, "num_steps": STEPS, "created_at": made})
            record = ledger.Record(seq, pid, symbol.ticker, "1d", model.version, made, tuple(
                ledger.Step(s.step, s.timestamp.to_pydatetime().replace(tzinfo=None), s.close, s.lower, s.upper)
                for s in result.steps))
            steps += [{"id": uuid.uuid4(), "prediction_id": pid, "step_number": s.step, "timestamp": s.timestamp,
                       "open": s.close, "high": s.close, "low": s.close, "close": s.close, "lower": s.lower,
                       "upper": s.upper} for s in record.steps]
            digest = ledger.chain_hash(ledger.canonical_json(record), prev)
            rows.append({"seq": seq, "prediction_id": pid, "made_at": made, "prev_hash": prev, "hash": digest})
            records.append(record)
            prev = digest
        with engine.begin() as conn:
            conn.execute(Prediction.__table__.insert(), preds)
            conn.execute(PredictionStep.__table__.insert(), steps)
            conn.execute(LedgerEntry.__table__.insert(), rows)
    engine.dispose()
    return records


def seeded(url: str) -> tuple[Symbol, ModelRecord]:
    """A symbol and an active model row to store forecasts of."""
    engine = make_engine(url)
    with session_scope(engine) as s:
        symbol = Symbol(ticker="X:BENCHUSD", name="bench", volume_rank=1)
        model = ModelRecord(timeframe="1d", version="v-bench", training_start=datetime(2025, 1, 1),
                            training_end=datetime(2026, 1, 1), num_symbols=1, model_path="/nowhere",
                            is_active=True, trained_at=datetime(2026, 1, 2))
        s.add_all([symbol, model])
    with session_scope(engine) as s:  # detached copies for the other engines
        found = s.get(Symbol, symbol.id), s.get(ModelRecord, model.id)
    engine.dispose()
    assert found[0] is not None and found[1] is not None
    return found[0], found[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", type=int, default=300, help="stores timed with and without the entry, each")
    parser.add_argument("--entries", type=int, default=20_000, help="ledger entries to verify")
    args = parser.parse_args()
    with scratch_database("bench_ledger") as url:
        symbol, model = seeded(url)
        with_entry, without = store_cost(url, symbol, model, args.stores)
        p50_with, p50_without = statistics.median(with_entry), statistics.median(without)
        print(f"store of an uncached forecast ({args.stores} each, interleaved): p50 {p50_with:.2f} ms with its ledger "
              f"entry, {p50_without:.2f} ms without; added p50 {p50_with - p50_without:.2f} ms (goal < 2 ms); "
              f"p90 {np.percentile(with_entry, 90):.2f} vs {np.percentile(without, 90):.2f} ms")
    with scratch_database("bench_ledger") as url:  # a ledger of its own: entries cannot be deleted
        symbol, model = seeded(url)
        started = time.perf_counter()
        records = fill(url, symbol, model, args.entries)
        print(f"filled {len(records)} entries of {STEPS} steps in {time.perf_counter() - started:.1f} s")
        engine = make_engine(url)
        started = time.perf_counter()
        result = ledger.verify(engine)
        seconds = time.perf_counter() - started
        assert result.ok and result.checked == len(records), result.failure
        started = time.perf_counter()
        prev = ledger.GENESIS
        for record in records:
            prev = ledger.chain_hash(ledger.canonical_json(record), prev)
        alone = time.perf_counter() - started
        assert result.head is not None and prev == result.head.hash
        print(f"verify: {result.checked} entries in {seconds:.2f} s = {result.checked / seconds:,.0f} entries/s "
              f"(goal >= 20,000/s); the hashes alone, in memory: {alone:.2f} s = {len(records) / alone:,.0f}/s; "
              f"reading the forecasts from PostgreSQL is {100 * (1 - alone / seconds):.0f} % of verify's time")
        engine.dispose()


if __name__ == "__main__":
    main()
