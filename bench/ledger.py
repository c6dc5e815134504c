"""Benchmark the track record's ledger and public log on PostgreSQL: what an entry (chain, leaf
and tree nodes) adds to an uncached forecast's store (p50, goal < 2 ms); how fast the log's
audit recomputes leaves and tree (goal >= 100,000 entries/s) and the chain's verify; proof
sizes and verify times at 10^4, 10^5 and 10^6 entries (an in-memory tree); checkpoint signing.
Baselines in the same run: the store without its entry (a replay's store: the same writes, the
log left out, interleaved), the hashes alone in memory (no database).

    .venv/bin/python -m bench.ledger [--stores 300] [--entries 20000] [--proof-sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import json
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
from transparency import merkle, store
from transparency.audit import audit
from transparency.log import TransparencyLog, b64
from transparency.note import Checkpoint, Signer, read_checkpoint

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
    with_entry, without = [], []
    for i in range(stores * 2):
        service.in_log = i % 2 == 0
        result = forecast_of(model, rng)
        started = time.perf_counter()
        service._persist(symbol, "1d", result, NOW + timedelta(seconds=i))
        (with_entry if service.in_log else without).append((time.perf_counter() - started) * 1000)
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
            store.append_leaves(conn, first, [ledger.canonical_json(r).encode() for r in records[first:]])
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


def audit_speed(url: str, records: list[ledger.Record]) -> None:
    """The log's audit from the database against the hashes alone over the same texts in memory."""
    engine = make_engine(url)
    log = TransparencyLog(engine, Signer.generate("bench.invalid/ledger"), 0.0)
    log.checkpoint()
    started = time.perf_counter()
    result = audit(engine, log.signer.verifier)
    seconds = time.perf_counter() - started
    assert result.ok and result.leaves == len(records), result.failure
    texts = [ledger.canonical_json(r).encode() for r in records]
    started = time.perf_counter()
    level = [merkle.leaf_hash(t) for t in texts]
    while len(level) > 1:
        level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    alone = time.perf_counter() - started
    mean_bytes = sum(map(len, texts)) / len(texts)
    print(f"log audit: {result.leaves} leaves + {result.nodes} nodes in {seconds:.2f} s = {result.leaves / seconds:,.0f} "
          f"entries/s (goal >= 100,000/s); leaves and tree hashed alone in memory: {len(texts) / alone:,.0f}/s "
          f"(mean entry {mean_bytes:,.0f} bytes)")
    for i in (0, len(records) // 2, len(records) - 1):  # the HTTP path's reads, one forecast's proof
        started = time.perf_counter()
        log.inclusion(i, len(records))
        print(f"  inclusion proof of leaf {i} from PostgreSQL: {(time.perf_counter() - started) * 1000:.2f} ms")
    engine.dispose()


def proof_figures(sizes: list[int]) -> None:
    """Proof sizes (JSON, as served) and verify times in a tree held in memory, as the store holds it."""
    signer = Signer.generate("bench.invalid/ledger")
    nodes: dict[tuple[int, int], bytes] = {}
    done = 0
    for size in sorted(sizes):
        for i in range(done, size):
            for level, idx, digest in merkle.new_nodes(i, merkle.leaf_hash(b"%d" % i), lambda lv, ix: nodes[(lv, ix)]):
                nodes[(level, idx)] = digest
        done = size
        def node(level: int, index: int) -> bytes:
            return nodes[(level, index)]

        root = merkle.root(size, node)
        index = size * 2 // 3
        path = merkle.inclusion_proof(index, size, node)
        consistency = merkle.consistency_proof(size // 2 + 1, size, node)
        as_json = json.dumps({"index": index, "tree_size": size, "leaf_hash": b64(nodes[(0, index)]),
                              "hashes": [b64(h) for h in path]})
        note = Checkpoint(signer.name, size, root).sign(signer).render()
        runs = 2000
        started = time.perf_counter()
        for _ in range(runs):  # what a client does with one forecast: the leaf, the proof, the signature
            merkle.verify_inclusion(index, size, merkle.leaf_hash(b"%d" % index), path, root)
            read_checkpoint(note, signer.verifier)
        check_ms = (time.perf_counter() - started) / runs * 1000
        print(f"  {size:>9,} entries: inclusion proof {len(path)} hashes, {len(as_json)} bytes as JSON (goal <= 1 KiB); "
              f"consistency proof {len(consistency)} hashes; one forecast's check (leaf + proof + checkpoint "
              f"signature) {check_ms:.3f} ms (goal < 1 ms)")


def signing_rate(url: str) -> None:
    signer = Signer.generate("bench.invalid/ledger")
    started, runs = time.perf_counter(), 2000
    for size in range(runs):
        Checkpoint(signer.name, size, bytes(32)).sign(signer)
    alone = runs / (time.perf_counter() - started)
    engine = make_engine(url)
    started, runs_db = time.perf_counter(), 200
    with engine.connect() as conn:
        for _ in range(runs_db):  # what a new checkpoint costs the service: the root from the stored tree, signed
            size = store.size(conn)
            node = store.reader(conn, lambda n, size=size: merkle.root(size, n))
            Checkpoint(signer.name, size, merkle.root(size, node)).sign(signer)
    print(f"checkpoint signing: {alone:,.0f}/s signed alone; {runs_db / (time.perf_counter() - started):,.0f}/s with "
          f"the root read from PostgreSQL's tree")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", type=int, default=300, help="stores timed with and without the entry, each")
    parser.add_argument("--entries", type=int, default=20_000, help="ledger entries to verify")
    parser.add_argument("--proof-sizes", default="10000,100000,1000000", help="tree sizes of the proof figures")
    args = parser.parse_args()
    with scratch_database("bench_ledger") as url:
        symbol, model = seeded(url)
        with_entry, without = store_cost(url, symbol, model, args.stores)
        p50_with, p50_without = statistics.median(with_entry), statistics.median(without)
        print(f"store of an uncached forecast ({args.stores} each, interleaved): p50 {p50_with:.2f} ms with its log "
              f"entry, {p50_without:.2f} ms without; added p50 {p50_with - p50_without:.2f} ms (goal < 2 ms); "
              f"p90 {np.percentile(with_entry, 90):.2f} vs {np.percentile(without, 90):.2f} ms")
    with scratch_database("bench_ledger") as url:  # a ledger of its own: entries cannot be deleted
        symbol, model = seeded(url)
        started = time.perf_counter()
        records = fill(url, symbol, model, args.entries)
        print(f"filled {len(records)} entries of {STEPS} steps in {time.perf_counter() - started:.1f} s")
        audit_speed(url, records)
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
        print(f"chain verify (forecasts rebuilt from their rows): {result.checked} entries in {seconds:.2f} s = "
              f"{result.checked / seconds:,.0f} entries/s; the chain's hashes alone, in memory: {len(records) / alone:,.0f}/s")
        engine.dispose()
        print("proofs (in-memory tree):")
        proof_figures([int(x) for x in args.proof_sizes.split(",")])
        signing_rate(url)


if __name__ == "__main__":
    main()
