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

import base64
import hashlib
import json
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.types import NullType

from clock import naive_utc
from market_data.timeframes import spec
from storage.schema import LedgerEntry, ModelRecord, Prediction, PredictionStep, Symbol
from transparency import store

GENESIS = "0" * 64  # the previous hash of the first entry
LOCK_KEY = 0x63727970746F  # PostgreSQL advisory lock of the appends ("crypto")
BATCH = 2000  # entries read at a time when verifying
STEP_COLUMNS = ("step_number", "timestamp", "close", "lower", "upper", "q05", "q25", "q50", "q75", "q95")
QUANTILE_COLUMNS = STEP_COLUMNS[5:]  # the stored quantiles beside the band (migration 0012)
QUANTILE_KEYS = ("0.05", "0.1", "0.25", "0.5", "0.75", "0.9", "0.95")  # a step's `quantiles`, in sorted order
MOMENT_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'  # PostgreSQL's to_char for `_moment`


class Step(NamedTuple):  # a tuple: a long ledger's verification builds millions
    step: int
    timestamp: datetime | str  # naive UTC, as stored; or already in the canonical form (`_moment`)
    close: float
    lower: float | None
    upper: float | None
    # the close's quantiles at QUANTILE_KEYS' levels; None for a forecast made before steps had them
    quantiles: tuple[float, ...] | None = None


def quantile_rest(values: Sequence[float]) -> tuple[float, ...]:
    """Of a step's quantiles at QUANTILE_KEYS' levels, those stored beside the band (QUANTILE_COLUMNS):
    the inverse of `stored_quantiles`."""
    return tuple(values[i] for i, key in enumerate(QUANTILE_KEYS) if key not in ("0.1", "0.9"))


def stored_quantiles(lower: float | None, upper: float | None, rest: Sequence[float | None]) -> tuple[float, ...] | None:
    """A step's quantiles from its stored columns: the band's ends and `rest`, its QUANTILE_COLUMNS."""
    q05, q25, q50, q75, q95 = rest
    if q05 is None or lower is None or upper is None:
        return None
    return (q05, lower, q25, q50, q75, upper, q95)  # type: ignore[return-value]


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


def _moment(value: datetime | str) -> str:
    """A time in the canonical form: UTC, microseconds, a Z (`MOMENT_FORMAT` in PostgreSQL's words)."""
    if isinstance(value, str):
        return value
    if value.tzinfo is not None:
        value = naive_utc(value)
    return value.isoformat(timespec="microseconds") + "Z"


def _origin(record: Record) -> str:
    """The origin candle: the one before the first step (the made_at of a forecast of no step)."""
    if not record.steps:
        return _moment(record.made_at)
    first = record.steps[0][1]
    if isinstance(first, str):
        first = datetime.fromisoformat(first.removesuffix("Z"))
    return _moment(spec(record.timeframe).next_open(first, -1))


def canonical_body(record: Record) -> dict[str, Any]:
    """The forecast the ledger hashes, as JSON data (what `canonical_json` writes)."""
    return {
        "seq": record.seq, "prediction_id": str(record.prediction_id), "symbol": record.symbol,
        "timeframe": record.timeframe, "model_version": record.model_version, "made_at": _moment(record.made_at),
        "origin": _origin(record),
        "steps": [{"step": s.step, "timestamp": _moment(s.timestamp), "close": _float(s.close),
                   "lower": None if s.lower is None else _float(s.lower),
                   "upper": None if s.upper is None else _float(s.upper),
                   **({} if s.quantiles is None else
                      {"quantiles": {k: _float(q) for k, q in zip(QUANTILE_KEYS, s.quantiles)}})}
                  for s in record.steps],
    }


def _float(value: float) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"a forecast price must be a finite number, got {number}")
    return number


def canonical_json(record: Record) -> str:
    """`canonical_body` as the ledger hashes it: `json.dumps(body, sort_keys=True, separators=(",",
    ":"))`, floats as Python writes them (the shortest text that reads back to the same double),
    times as UTC with microseconds. Written out by hand because verifying a long ledger formats
    millions of steps; a test holds it equal to `json.dumps` of the body."""
    origin = _origin(record)
    r, null = float.__repr__, "null"

    def quantiles(values: tuple[float, ...] | None) -> str:  # absent, not null, where a step has none
        if values is None:
            return ""
        return '"quantiles":{' + ",".join(f'"{k}":{r(float(q))}' for k, q in zip(QUANTILE_KEYS, values)) + "},"

    steps = ",".join(
        f'{{"close":{r(float(close))},"lower":{null if lower is None else r(float(lower))},{quantiles(qs)}'
        f'"step":{step},"timestamp":"{_moment(stamp)}","upper":{null if upper is None else r(float(upper))}}}'
        for step, stamp, close, lower, upper, qs in record.steps)
    text = json.dumps
    return (f'{{"made_at":"{_moment(record.made_at)}","model_version":{text(record.model_version)},'
            f'"origin":"{origin}","prediction_id":"{record.prediction_id}","seq":{int(record.seq)},'
            f'"steps":[{steps}],"symbol":{text(record.symbol)},"timeframe":{text(record.timeframe)}}}')


def chain_hash(canonical: str, prev_hash: str) -> str:
    return hashlib.sha256((canonical + prev_hash).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Entry:
    seq: int
    prediction_id: uuid.UUID
    made_at: datetime
    prev_hash: str
    hash: str
    leaf_hash: bytes | None = None  # its leaf in the public log, where just entered


@dataclass(frozen=True)
class Tip:
    """Where the next entry goes, read under the appends' lock: its `seq`, the hash it follows,
    and the newest entry's made_at (no entry may be made earlier)."""

    seq: int
    prev_hash: str
    made_at: datetime | None

    def made_at_for(self, now: datetime) -> datetime:
        """`now` (naive UTC), or the previous entry's made_at where a replica's clock is behind it."""
        moment = naive_utc(now)
        return moment if self.made_at is None or moment >= self.made_at else self.made_at


def reserve(conn: Connection) -> Tip:
    """Take the appends' lock for the caller's transaction and read the tip: call it before the
    forecast's rows are written, so they can name their entry and a made_at no earlier than the last."""
    table = LedgerEntry.__table__
    if conn.dialect.name == "postgresql":  # the lock, then the tip (migration 0010), in one round trip
        head = conn.execute(sa.text("SELECT seq, hash, made_at FROM ledger_locked_tip(:key)"), {"key": LOCK_KEY}).first()
    else:  # SQLite: a write that changes nothing takes the database's one write lock until commit
        conn.execute(sa.text("UPDATE ledger_entries SET seq = seq WHERE 0 = 1"))
        head = conn.execute(sa.select(table.c.seq, table.c.hash, table.c.made_at)
                            .order_by(table.c.seq.desc()).limit(1)).first()
    return Tip(1, GENESIS, None) if head is None else Tip(int(head.seq) + 1, str(head.hash), head.made_at)


def enter(conn: Connection, tip: Tip, record: Record) -> Entry:
    """Enter `record` (whose `seq` is ignored) at `tip`, in the caller's transaction: the chain's
    entry, and the public log's leaf with the tree nodes it completes (`transparency.store`)."""
    _check_prices(record)
    if tip.made_at is not None and naive_utc(record.made_at) < tip.made_at:
        raise ValueError(f"a forecast made at {record.made_at} cannot follow entry {tip.seq - 1} made at {tip.made_at}")
    numbered = Record(tip.seq, record.prediction_id, record.symbol, record.timeframe, record.model_version,
                      record.made_at, record.steps)
    canonical = canonical_json(numbered)
    made_at, digest = naive_utc(record.made_at), chain_hash(canonical, tip.prev_hash)
    conn.execute(LedgerEntry.__table__.insert().values(seq=tip.seq, prediction_id=record.prediction_id,
                                                       made_at=made_at, prev_hash=tip.prev_hash, hash=digest))
    (leaf,) = store.append_leaves(conn, tip.seq - 1, [canonical.encode("utf-8")])
    return Entry(tip.seq, record.prediction_id, made_at, tip.prev_hash, digest, leaf)


def append(conn: Connection, record: Record) -> Entry:
    """`reserve` then `enter`, for a caller whose forecast's rows need not name the entry."""
    _check_prices(record)
    return enter(conn, reserve(conn), record)


def _check_prices(record: Record) -> None:
    """A price that is not a number would enter a chain nobody can recompute."""
    for s in record.steps:
        for price in (s.close, s.lower, s.upper, *(s.quantiles or ())):
            if price is not None:
                _float(price)


def reference(conn: Connection, seq: int, leaf: bytes | None = None) -> dict[str, Any]:
    """Where entry `seq` is in the public log, as every forecast answer carries it: its leaf index
    (seq - 1) and leaf hash (base64; read from the tree unless given), what an inclusion proof is
    asked for and checked against."""
    if leaf is None:
        leaf = store.leaf_hashes(conn, [seq - 1])[seq - 1]
    return {"index": seq - 1, "leaf_hash": base64.b64encode(leaf).decode()}


def head(engine: Engine) -> Entry | None:
    table = LedgerEntry.__table__
    with engine.connect() as conn:
        row = conn.execute(sa.select(table).order_by(table.c.seq.desc()).limit(1)).first()
    return None if row is None else Entry(int(row.seq), row.prediction_id, row.made_at, row.prev_hash, row.hash)


def _entries(conn: Connection, first: int, last: int, quantiles: bool = True) -> list[tuple[Entry, Record | None]]:
    """Entries `first`..`last` with the forecasts they attest, rebuilt from the stored tables.
    `quantiles` off: on a schema before migration 0012, whose steps have none."""
    names = STEP_COLUMNS if quantiles else STEP_COLUMNS[:5]
    ledger, preds, steps = LedgerEntry.__table__, Prediction.__table__, PredictionStep.__table__
    symbols, models = Symbol.__table__, ModelRecord.__table__
    columns = [ledger, preds.c.created_at, preds.c.timeframe, symbols.c.ticker, models.c.version]
    joined = (ledger.outerjoin(preds, preds.c.id == ledger.c.prediction_id)
              .outerjoin(symbols, symbols.c.id == preds.c.symbol_id).outerjoin(models, models.c.id == preds.c.model_id))
    in_range = ledger.c.seq.between(first, last)
    by_seq: dict[int, tuple[Step, ...]] = {}
    if conn.dialect.name == "postgresql":  # each forecast's steps as arrays: one row per entry, not thirty
        # times written by PostgreSQL in the canonical form (`_moment`), not parsed and written again
        stamp = sa.func.to_char(steps.c.timestamp, MOMENT_FORMAT).label("timestamp")
        arrays = [sa.func.array_agg(aggregate_order_by(c, steps.c.step_number), type_=NullType()).label(c.name)
                  for c in (steps.c.step_number, stamp, *[steps.c[name] for name in names[2:]])]
        stepped = (sa.select(steps.c.prediction_id, *arrays).where(steps.c.prediction_id.in_(
            sa.select(ledger.c.prediction_id).where(in_range))).group_by(steps.c.prediction_id).subquery())
        rows = conn.execute(sa.select(*columns, *[stepped.c[name] for name in names])
                            .select_from(joined.outerjoin(stepped, stepped.c.prediction_id == ledger.c.prediction_id))
                            .where(in_range).order_by(ledger.c.seq)).all()
        for r in rows:
            if r.step_number is not None:  # plain tuples of Step's fields: millions of them on a long ledger
                stored = [r.q05, r.q25, r.q50, r.q75, r.q95] if quantiles else [[None] * len(r.step_number)] * 5
                by_seq[int(r.seq)] = cast(tuple[Step, ...], tuple(
                    (step, stamp, close, lower, upper, stored_quantiles(lower, upper, qs))
                    for step, stamp, close, lower, upper, *qs in zip(
                        r.step_number, r.timestamp, r.close, r.lower, r.upper, *stored)))
    else:
        rows = conn.execute(sa.select(*columns).select_from(joined).where(in_range).order_by(ledger.c.seq)).all()
        grouped: dict[int, list[Step]] = {}
        for s in conn.execute(
                sa.select(ledger.c.seq, *[steps.c[name] for name in names])
                .select_from(ledger.join(steps, steps.c.prediction_id == ledger.c.prediction_id))
                .where(in_range).order_by(ledger.c.seq, steps.c.step_number)):
            qs = stored_quantiles(s.lower, s.upper, [getattr(s, c) for c in QUANTILE_COLUMNS]) if quantiles else None
            grouped.setdefault(int(s.seq), []).append(Step(s.step_number, s.timestamp, s.close, s.lower, s.upper, qs))
        by_seq = {seq: tuple(found) for seq, found in grouped.items()}
    out = []
    for r in rows:
        entry = Entry(int(r.seq), r.prediction_id, r.made_at, r.prev_hash, r.hash)
        record = None if r.created_at is None else Record(
            entry.seq, r.prediction_id, r.ticker, r.timeframe, r.version, r.created_at, by_seq.get(entry.seq, ()))
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
