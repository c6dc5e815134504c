"""The track record's ledger, on SQLite and on PostgreSQL: every anonymous forecast entered with
it, a chain anyone can recompute, tampering found at exactly the entry it touched, and a
gapless sequence under concurrent replicas."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from clock import naive_utc
from jobs import verify_ledger
from predictions import ledger
from predictions.market import MarketView
from predictions.service import ForecastAsk, PredictionService
from storage.cache import MemoryCache
from storage.db import make_engine
from storage.registry import ModelRegistry
from storage.schema import LedgerEntry, ModelRecord, Prediction, PredictionStep
from tests import tlog_client
from tests.conftest import START, bearer, client_for, flat_forecast, make_world, register_and_login
from transparency.log import TransparencyLog
from transparency.note import Signer


def _forecasts(world: dict[str, Any], n: int) -> Any:
    """`n` fresh anonymous forecasts over the world's coins, and one signed-in user's copy."""
    client = client_for(world, QUOTA_ANONYMOUS="1000")
    for i in range(n):
        r = client.post("/ml/predict", json={"symbol": world["tickers"][i % len(world["tickers"])], "timeframe": "1d"})
        assert r.status_code == 200, r.text
    token = register_and_login(client, "led@example.com")
    mine = client.post("/api/predictions/generate", json={"symbol": world["tickers"][0], "timeframe": "1d"},
                       headers=bearer(token))
    assert mine.status_code == 200 and mine.json()["cached"] is True  # a copy of the shared forecast
    return client


def _bypass(conn: sa.Connection) -> None:
    """What only a database owner can do: switch the append-only triggers off for this session."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SET session_replication_role = replica"))
    else:
        conn.execute(sa.text("DROP TRIGGER IF EXISTS ledger_entries_no_delete"))
        conn.execute(sa.text("DROP TRIGGER IF EXISTS ledger_entries_no_update"))


def test_every_anonymous_forecast_is_entered_and_anyone_can_recompute_the_chain(world) -> None:
    client = _forecasts(world, 5)
    head = client.get("/api/ledger/head").json()
    assert head["seq"] == 5  # users' copies are not entered: the shared forecast is
    previous = ledger.GENESIS
    for seq in range(1, 6):
        entry = client.get(f"/api/ledger/{seq}").json()
        assert entry["verifies"] and entry["prev_hash"] == previous
        recomputed = hashlib.sha256((entry["canonical_json"] + entry["prev_hash"]).encode()).hexdigest()
        assert recomputed == entry["hash"]
        forecast = json.loads(entry["canonical_json"])
        stored = client.get(f"/api/predictions/{entry['prediction_id']}").json()
        assert forecast["seq"] == seq and forecast["symbol"] == stored["symbol"]
        assert [s["close"] for s in forecast["steps"]] == [s["close"] for s in stored["steps"]]
        assert [s["upper"] for s in forecast["steps"]] == [s["upper"] for s in stored["steps"]]
        assert forecast["model_version"] == stored["model_version"] == "v-test"
        previous = entry["hash"]
    assert head["hash"] == previous
    result = ledger.verify(world["engine"])
    assert result.ok and result.checked == 5
    for path, status in (("/api/ledger/0", 400), ("/api/ledger/6", 404), ("/api/ledger/x", 422)):
        assert client.get(path).status_code == status


def test_the_application_cannot_change_or_delete_an_entry(world) -> None:
    _forecasts(world, 1)
    for statement in ("UPDATE ledger_entries SET hash = 'x' WHERE seq = 1", "DELETE FROM ledger_entries WHERE seq = 1"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), world["engine"].begin() as conn:
            conn.execute(sa.text(statement))
    assert ledger.verify(world["engine"]).ok


STEPS, PREDICTIONS = PredictionStep.__table__, Prediction.__table__


def _step(pid: uuid.UUID, number: int) -> Any:
    return sa.and_(STEPS.c.prediction_id == pid, STEPS.c.step_number == number)


TAMPERS: dict[str, Callable[[sa.Connection, uuid.UUID, uuid.UUID], Any]] = {
    "a close": lambda conn, pid, _: conn.execute(STEPS.update().where(_step(pid, 7)).values(close=STEPS.c.close * 1.001)),
    "a band": lambda conn, pid, _: conn.execute(STEPS.update().where(_step(pid, 30)).values(upper=STEPS.c.upper + 1)),
    "a step's time": lambda conn, pid, _: conn.execute(STEPS.update().where(_step(pid, 1)).values(
        timestamp=conn.execute(sa.select(STEPS.c.timestamp).where(_step(pid, 1))).scalar() + timedelta(days=1))),
    "made_at": lambda conn, pid, _: conn.execute(PREDICTIONS.update().where(PREDICTIONS.c.id == pid).values(
        created_at=conn.execute(sa.select(PREDICTIONS.c.created_at).where(PREDICTIONS.c.id == pid)).scalar()
        + timedelta(seconds=1))),
    "the model": lambda conn, pid, other: conn.execute(PREDICTIONS.update().where(PREDICTIONS.c.id == pid)
                                                       .values(model_id=other)),
    "a quantile": lambda conn, pid, _: conn.execute(STEPS.update().where(_step(pid, 12)).values(q95=STEPS.c.q95 * 1.01)),
}


@pytest.mark.parametrize("what", list(TAMPERS))
def test_tampering_is_found_at_exactly_the_entry_it_touched(world, what: str) -> None:
    _forecasts(world, 6)
    engine = world["engine"]
    entries = LedgerEntry.__table__
    with engine.begin() as conn:
        pid = conn.execute(sa.select(entries.c.prediction_id).where(entries.c.seq == 4)).scalar()
        other = ModelRecord(timeframe="1d", version="v-other", training_start=START, training_end=START, num_symbols=1,
                            model_path="/x", trained_at=START)
        conn.execute(ModelRecord.__table__.insert().values(
            id=other.id, timeframe=other.timeframe, version=other.version, training_start=naive_utc(START),
            training_end=naive_utc(START), num_symbols=1, model_path="/x", trained_at=naive_utc(START)))
        TAMPERS[what](conn, pid, other.id)
    result = ledger.verify(engine)
    assert not result.ok and result.failed_seq == 4 and result.checked == 3, result.failure
    assert "entry 4" in (result.failure or "")
    lines: list[str] = []
    assert not verify_ledger.run(engine, say=lines.append).ok and "DOES NOT VERIFY" in lines[-1]
    assert verify_ledger.run(engine, 5, say=lines.append).ok  # entries after it still chain (from 5 on)


def test_a_deleted_or_reordered_entry_is_found_where_it_was(world) -> None:
    _forecasts(world, 5)
    engine = world["engine"]
    with engine.begin() as conn:
        _bypass(conn)
        row = conn.execute(sa.text("SELECT * FROM ledger_entries WHERE seq = 3")).mappings().one()
        conn.execute(sa.text("DELETE FROM ledger_entries WHERE seq = 3"))
    result = ledger.verify(engine)
    assert result.failed_seq == 3 and "missing" in (result.failure or "")
    with engine.begin() as conn:  # put it back as entry 3 but swapped with entry 2's place in the chain
        _bypass(conn)
        conn.execute(sa.text("INSERT INTO ledger_entries (seq, prediction_id, made_at, prev_hash, hash) "
                             "VALUES (:seq, :prediction_id, :made_at, :prev_hash, :hash)"), dict(row))
    assert ledger.verify(engine).ok  # restored exactly: the chain holds again
    with engine.begin() as conn:
        _bypass(conn)
        two = conn.execute(sa.text("SELECT * FROM ledger_entries WHERE seq = 2")).mappings().one()
        conn.execute(sa.text("DELETE FROM ledger_entries WHERE seq IN (2, 3)"))
        for seq, moved in ((2, row), (3, two)):
            conn.execute(sa.text("INSERT INTO ledger_entries (seq, prediction_id, made_at, prev_hash, hash) "
                                 "VALUES (:seq, :prediction_id, :made_at, :prev_hash, :hash)"), {**moved, "seq": seq})
    result = ledger.verify(engine)
    assert result.failed_seq == 2 and "does not follow" in (result.failure or ""), result.failure


def test_two_replicas_enter_400_concurrent_forecasts_without_a_gap(tmp_path, pg_database_url, redis_cache) -> None:
    """On PostgreSQL, where writers run side by side (SQLite has one writer at a time)."""
    world = make_world(pg_database_url, redis_cache, tmp_path)
    replicas = []
    for _ in range(2):  # two services on their own engines and caches, as two ingress replicas are
        engine = make_engine(world["url"])
        cache = MemoryCache()
        market = MarketView(engine, cache, world["market"], lambda tf: 20, world["clock"])
        replicas.append(PredictionService(engine, cache, market, ModelRegistry(engine, world["tmp"] / "models"),
                                          flat_forecast(world["model_id"])))

    def forecast(i: int) -> dict[str, Any]:
        return replicas[i % 2].generate(ForecastAsk(world["tickers"][i % len(world["tickers"])], "1d"), use_cache=False)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(forecast, range(400)))
    with world["engine"].connect() as conn:
        seqs = [r[0] for r in conn.execute(sa.text("SELECT seq FROM ledger_entries ORDER BY seq"))]
        forecasts = conn.execute(sa.text("SELECT count(*) FROM predictions WHERE user_id IS NULL")).scalar()
    assert seqs == list(range(1, 401)) and forecasts == 400
    assert ledger.verify(world["engine"]).ok
    # every answer's proof verifies, by an outsider's RFC 9162 verifier, against the signed checkpoint
    log = TransparencyLog(world["engine"], Signer.generate("test.invalid/ledger"), 0.0)
    checkpoint = tlog_client.read_checkpoint(log.checkpoint(), log.signer.verifier.vkey)
    assert checkpoint.size == 400 and sorted(a["ledger"]["index"] for a in answers) == list(range(400))
    for answer in answers:
        index, leaf = answer["ledger"]["index"], base64.b64decode(answer["ledger"]["leaf_hash"])
        proof = log.inclusion(index, 400)
        assert proof.leaf_hash == leaf
        assert tlog_client.root_from_inclusion(index, 400, leaf, proof.hashes) == checkpoint.root
    for engine in (world["engine"], *(replica.engine for replica in replicas)):
        engine.dispose()


def test_the_canonical_json_is_json_dumps_of_the_forecast_with_sorted_keys() -> None:
    """`canonical_json` is written out by hand for speed; it must stay exactly the documented form."""
    from datetime import datetime

    import numpy as np

    steps = tuple(ledger.Step(i + 1, datetime(2026, 1, 1) + timedelta(days=i),
                              [np.float64(0.1 * i + 1e-5), 123456789.0, 1e-05, 2.5e-07][i % 4],
                              None if i % 3 == 0 else 0.5 * i, 1.0 / 3 + i,
                              None if i % 2 else tuple(0.1 * k + i + 1e-7 for k in range(7))) for i in range(30))
    record = ledger.Record(7, uuid.uuid4(), 'X:"ODD"\\USD', "1d", "v1.0 é", datetime(2026, 1, 1, 12, 0, 0, 123456), steps)
    expected = json.dumps(ledger.canonical_body(record), sort_keys=True, separators=(",", ":"), allow_nan=False)
    assert ledger.canonical_json(record) == expected
    assert '"origin":"2025-12-31T00:00:00.000000Z"' in expected and '"close":123456789.0' in expected
    assert '"quantiles":{"0.05":1e-07,"0.1":' in expected  # where a step has them; absent where not
    with pytest.raises(ValueError, match="finite"):  # never entered: no one could recompute it as JSON
        ledger.append(None, ledger.Record(1, uuid.uuid4(), "X:A", "1d", "v", datetime(2026, 1, 1),  # type: ignore[arg-type]
                                          (ledger.Step(1, datetime(2026, 1, 2), float("nan"), None, None),)))
