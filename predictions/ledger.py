"""The track record: every forecast served anonymously, entered when it is made in an
append-only hash chain, so that anyone can check later that no forecast was changed, removed or
reordered after its outcome was known.

An entry's hash is `sha256(canonical_json + prev_hash)`: the forecast's canonical JSON (below)
followed by the previous entry's hash (64 zeros before the first). The canonical JSON is rebuilt
from what the database stores (the prediction, its steps, its symbol and model), never kept
beside it, so a stored close, band, time or model version that changes no longer hashes to the
entry. Appends take a transaction-scoped lock, so `seq` has no gaps across replicas.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from clock import naive_utc
from market_data.timeframes import spec
from storage.schema import LedgerEntry, ModelRecord, Prediction, PredictionStep, Symbol

GENESIS = "0" * 64  # the previous hash of the first entry
LOCK_KEY = 0x63727970746F  # PostgreSQL advisory lock of the appends ("crypto")
BATCH = 2000  # entries read at a time when verifying


@dataclass(frozen=True)
class Step:
    step: int
    timestamp: datetime  # naive UTC, as stored
    close: float
    lower: float | None
    upper: float | None


@dataclass(frozen=True)
class Record:
    """What an entry attests: one forecast as stored."""

    seq: int
    prediction_id: uuid.UUID
    symbol: str
    timeframe: str
    model_version: str
    made_at: datetime  # naive UTC, as stored
    steps: tuple[Step, ...]


def _moment(value: datetime) -> str:
    return naive_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(record: Record) -> str:
    """The forecast as the ledger hashes it: sorted keys, no spaces, floats as Python writes them
    (shortest text that reads back to the same double), times as UTC with microseconds."""
    first = record.steps[0].timestamp if record.steps else record.made_at
    origin = spec(record.timeframe).next_open(first, -1) if record.steps else first
    body = {
        "seq": record.seq, "prediction_id": str(record.prediction_id), "symbol": record.symbol,
        "timeframe": record.timeframe, "model_version": record.model_version, "made_at": _moment(record.made_at),
        "origin": _moment(origin),
        "steps": [{"step": s.step, "timestamp": _moment(s.timestamp), "close": float(s.close),
                   "lower": None if s.lower is None else float(s.lower),
                   "upper": None if s.upper is None else float(s.upper)} for s in record.steps],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)


def chain_hash(canonical: str, prev_hash: str) -> str:
    return hashlib.sha256((canonical + prev_hash).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Entry:
    seq: int
    prediction_id: uuid.UUID
    made_at: datetime
    prev_hash: str
    hash: str


def append(conn: Connection, record: Record) -> Entry:
    """Enter `record` (whose `seq` is ignored) after the current head, in the caller's
    transaction: the prediction and its entry commit together or not at all."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    # SQLite: the caller has written the prediction already, so this transaction holds the
    # database's only write lock until it commits
    table = LedgerEntry.__table__
    head = conn.execute(sa.select(table.c.seq, table.c.hash).order_by(table.c.seq.desc()).limit(1)).first()
    seq, prev = (1, GENESIS) if head is None else (int(head.seq) + 1, str(head.hash))
    numbered = Record(seq, record.prediction_id, record.symbol, record.timeframe, record.model_version,
                      record.made_at, record.steps)
    entry = Entry(seq, record.prediction_id, naive_utc(record.made_at), prev, chain_hash(canonical_json(numbered), prev))
    conn.execute(table.insert().values(seq=entry.seq, prediction_id=entry.prediction_id, made_at=entry.made_at,
                                       prev_hash=entry.prev_hash, hash=entry.hash))
    return entry


def head(engine: Engine) -> Entry | None:
    table = LedgerEntry.__table__
    with engine.connect() as conn:
        row = conn.execute(sa.select(table).order_by(table.c.seq.desc()).limit(1)).first()
    return None if row is None else Entry(int(row.seq), row.prediction_id, row.made_at, row.prev_hash, row.hash)


def _entries(conn: Connection, first: int, last: int) -> list[tuple[Entry, Record | None]]:
    """Entries `first`..`last` with the forecasts they attest, rebuilt from the stored tables."""
    ledger, preds, steps = LedgerEntry.__table__, Prediction.__table__, PredictionStep.__table__
    symbols, models = Symbol.__table__, ModelRecord.__table__
    rows = conn.execute(
        sa.select(ledger, preds.c.created_at, preds.c.timeframe, symbols.c.ticker, models.c.version)
        .select_from(ledger.outerjoin(preds, preds.c.id == ledger.c.prediction_id)
                     .outerjoin(symbols, symbols.c.id == preds.c.symbol_id)
                     .outerjoin(models, models.c.id == preds.c.model_id))
        .where(ledger.c.seq.between(first, last)).order_by(ledger.c.seq)).all()
    by_seq: dict[int, list[Step]] = {}
    for s in conn.execute(
            sa.select(ledger.c.seq, steps.c.step_number, steps.c.timestamp, steps.c.close, steps.c.lower, steps.c.upper)
            .select_from(ledger.join(steps, steps.c.prediction_id == ledger.c.prediction_id))
            .where(ledger.c.seq.between(first, last)).order_by(ledger.c.seq, steps.c.step_number)):
        by_seq.setdefault(int(s.seq), []).append(Step(s.step_number, s.timestamp, s.close, s.lower, s.upper))
    out = []
    for r in rows:
        entry = Entry(int(r.seq), r.prediction_id, r.made_at, r.prev_hash, r.hash)
        record = None if r.created_at is None else Record(
            entry.seq, r.prediction_id, r.ticker, r.timeframe, r.version, r.created_at, tuple(by_seq.get(entry.seq, ())))
        out.append((entry, record))
    return out


def entry(engine: Engine, seq: int) -> tuple[Entry, str | None] | None:
    """Entry `seq` and the canonical JSON rebuilt from what is stored now (None: its forecast is gone)."""
    with engine.connect() as conn:
        found = _entries(conn, seq, seq)
    if not found:
        return None
    first, record = found[0]
    return first, None if record is None else canonical_json(record)


@dataclass
class Verification:
    checked: int = 0
    head: Entry | None = None
    failure: str | None = None  # the first entry that does not verify, and why
    failed_seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def _problem(entry: Entry, record: Record | None, expected_seq: int, prev_hash: str) -> str | None:
    if entry.seq != expected_seq:
        return (f"entry {expected_seq} is missing: the sequence goes from {expected_seq - 1} to {entry.seq} "
                "(an entry was deleted)")
    if entry.prev_hash != prev_hash:
        return (f"entry {entry.seq} does not follow entry {entry.seq - 1}: its previous hash is not that entry's "
                "hash (entries reordered or replaced)")
    if record is None:
        return f"entry {entry.seq}: its forecast {entry.prediction_id} is no longer stored"
    if naive_utc(record.made_at) != naive_utc(entry.made_at):
        return f"entry {entry.seq}: the forecast's made_at is not the time it was entered"
    if chain_hash(canonical_json(record), prev_hash) != entry.hash:
        return (f"entry {entry.seq}: the stored forecast no longer hashes to the entry (a changed close, band, "
                "timestamp, model version or made_at)")
    return None


def verify(engine: Engine, start: int = 1, progress: Callable[[int, int], None] | None = None) -> Verification:
    """Recompute the chain from entry `start` (trusting the entries before it) to the head; stop at
    the first entry that does not verify. `progress(checked, total)` is called after each batch."""
    result = Verification(head=head(engine))
    if result.head is None or start > result.head.seq:
        return result
    total = result.head.seq - start + 1
    with engine.connect() as conn:
        prev_hash = GENESIS
        if start > 1:
            before = _entries(conn, start - 1, start - 1)
            if not before:
                result.failure, result.failed_seq = f"entry {start - 1} is missing", start - 1
                return result
            prev_hash = before[0][0].hash
        expected = start
        for first in range(start, result.head.seq + 1, BATCH):
            for e, record in _entries(conn, first, first + BATCH - 1):
                problem = _problem(e, record, expected, prev_hash)
                if problem is not None:
                    result.failure, result.failed_seq = problem, expected
                    return result
                prev_hash, expected = e.hash, expected + 1
                result.checked += 1
            if progress is not None:
                progress(result.checked, total)
    if expected <= result.head.seq:  # the last batches held fewer entries than their seq span
        result.failure, result.failed_seq = f"entry {expected} is missing (an entry was deleted)", expected
    return result
