"""The public transparency log: RFC 9162 proofs checked by an outsider's verifier
(tests/tlog_client.py, none of the service's code) on trees of 1 to 1,000 leaves, signed
checkpoints, tiles, every forecast answer's proof, and the log's guards (made_at never going
back, replays never entered)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from predictions import ledger
from predictions.market import MarketView
from predictions.service import ForecastAsk, PredictionService
from storage.cache import MemoryCache
from storage.registry import ModelRegistry
from tests import tlog_client
from tests.conftest import bearer, client_for, flat_forecast, register_and_login
from transparency import merkle
from transparency.log import TransparencyLog
from transparency.note import Checkpoint, Note, Signer, Verifier
from transparency.tiles import Tile, TileError, bundle, unbundle


def _tree(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every complete subtree's hash, built leaf by leaf as the store builds it."""
    nodes: dict[tuple[int, int], bytes] = {}
    for i, data in enumerate(leaves):
        for level, idx, digest in merkle.new_nodes(i, merkle.leaf_hash(data), lambda lv, ix: nodes[(lv, ix)]):
            nodes[(level, idx)] = digest
    return nodes


LEAVES = [f"entry {i}".encode() for i in range(1000)]
NODES = _tree(LEAVES)


def node(level: int, index: int) -> bytes:
    return NODES[(level, index)]


SIZES = [*range(1, 65), 127, 128, 129, 255, 256, 257, 300, 511, 512, 513, 640, 777, 999, 1000]


@pytest.mark.parametrize("size", SIZES)
def test_roots_and_inclusion_proofs_agree_with_rfc_9162(size: int) -> None:
    assert merkle.root(size, node) == tlog_client.mth(LEAVES[:size])
    indices = range(size) if size <= 64 else sorted({0, 1, size // 3, size // 2, size - 2, size - 1})
    for index in indices:
        path = merkle.inclusion_proof(index, size, node)
        leaf = merkle.leaf_hash(LEAVES[index])
        assert tlog_client.root_from_inclusion(index, size, leaf, path) == tlog_client.mth(LEAVES[:size])
        merkle.verify_inclusion(index, size, leaf, path, merkle.root(size, node))
        assert len(path) <= (size - 1).bit_length()
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(size, size, node)


@pytest.mark.parametrize("second", [1, 2, 3, 7, 8, 9, 31, 64, 100, 256, 257, 999, 1000])
def test_consistency_proofs_agree_with_rfc_9162(second: int) -> None:
    firsts = range(1, second + 1) if second <= 64 else sorted({f for f in (1, 2, 3, 64, 128, second // 2, second - 1, second)
                                                               if f <= second})
    new_root = tlog_client.mth(LEAVES[:second])
    for first in firsts:
        old_root = tlog_client.mth(LEAVES[:first])
        proof = merkle.consistency_proof(first, second, node)
        assert tlog_client.roots_from_consistency(first, second, old_root, proof) == (old_root, new_root)
        merkle.verify_consistency(first, second, old_root, new_root, proof)


def test_a_wrong_proof_or_root_is_refused() -> None:
    root = merkle.root(300, node)
    path = merkle.inclusion_proof(77, 300, node)
    for bad_index, bad_leaf, bad_path in ((78, merkle.leaf_hash(LEAVES[77]), path),
                                          (77, merkle.leaf_hash(b"forged"), path),
                                          (77, merkle.leaf_hash(LEAVES[77]), path[:-1])):
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(bad_index, 300, bad_leaf, bad_path, root)
    other = _tree([*LEAVES[:100], b"rewritten", *LEAVES[101:300]])
    rewritten_root = merkle.root(300, lambda lv, ix: other[(lv, ix)])
    proof = merkle.consistency_proof(200, 300, lambda lv, ix: other[(lv, ix)])
    with pytest.raises(merkle.ProofError):  # the rewritten log does not extend the real one
        merkle.verify_consistency(200, 300, merkle.root(200, node), rewritten_root, proof)


def test_signed_notes_checkpoints_and_cosignatures() -> None:
    log, witness = Signer.generate("example.com/log"), Signer.generate("witness.example", 0x04)
    note = Checkpoint("example.com/log", 5, merkle.root(5, node)).sign(log)
    read = tlog_client.read_checkpoint(note.render(), log.verifier.vkey)
    assert (read.origin, read.size, read.root) == ("example.com/log", 5, tlog_client.mth(LEAVES[:5]))
    assert Verifier.parse(log.verifier.vkey) == log.verifier
    from transparency.note import cosign

    cosigned = Note(note.text, (*note.signatures, cosign(witness, note.text, 1_700_000_000)))
    again = Note.parse(cosigned.render())
    assert again.signed_by(log.verifier) and again.cosigned_at(witness.verifier) == 1_700_000_000
    assert tlog_client.read_checkpoint(cosigned.render(), log.verifier.vkey).cosigners == ("witness.example",)
    forged = Note.parse(note.render().replace("\n5\n", "\n6\n"))
    assert not forged.signed_by(log.verifier)


def test_tile_paths_follow_c2sp() -> None:
    assert Tile(0, 1234067, 256).path == "tile/0/x001/x234/067"
    assert Tile(1, 0, 7).path == "tile/1/000.p/7" and Tile(-1, 5, 256).path == "tile/entries/005"
    for path in ("tile/0/x001/x234/067", "tile/1/000.p/7", "tile/entries/x001/000"):
        assert Tile.parse(path).path == path
    for bad in ("tile/0/1", "tile/0/0001", "tile/0/000.p/256", "tile/0/000.p/0", "tile/x/000", "tile/0/x000/001"):
        with pytest.raises(TileError):
            Tile.parse(bad)
    assert unbundle(bundle([b"a", b"", b"xyz"])) == [b"a", b"", b"xyz"]


# -- the service's log ---------------------------------------------------------------------------
def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _proven(client: Any, answer: dict[str, Any]) -> tlog_client.SignedCheckpoint:
    """What an outsider does with a forecast answer: the log's key, its checkpoint, the proof."""
    vkey = client.get("/api/ledger/key").json()["vkey"]
    checkpoint = tlog_client.read_checkpoint(client.get("/api/ledger/checkpoint").text, vkey)
    ref = answer["ledger"]
    assert checkpoint.size > ref["index"]
    proof = client.get(f"/api/ledger/proof/inclusion?index={ref['index']}&tree_size={checkpoint.size}").json()
    assert proof["leaf_hash"] == ref["leaf_hash"]
    entry = client.get(f"/api/ledger/{ref['index'] + 1}").json()
    assert hashlib.sha256(b"\x00" + entry["canonical_json"].encode()).digest() == _b64(ref["leaf_hash"])
    body = json.loads(entry["canonical_json"])
    assert [s["close"] for s in body["steps"]] == [s["close"] for s in answer["steps"]]
    assert tlog_client.root_from_inclusion(ref["index"], checkpoint.size, _b64(ref["leaf_hash"]),
                                           [_b64(x) for x in proof["hashes"]]) == checkpoint.root
    return checkpoint


def test_every_forecast_answer_is_proven_in_a_signed_checkpoint(world) -> None:
    client = client_for(world, QUOTA_ANONYMOUS="1000")
    answers = []
    for i in range(7):
        r = client.post("/ml/predict", json={"symbol": world["tickers"][i % 4], "timeframe": "1d"})
        assert r.status_code == 200, r.text
        answers.append(r.json())
    assert [a["ledger"]["index"] for a in answers] == list(range(7)) and not any(a["replay"] for a in answers)
    first = _proven(client, answers[2])
    assert first.size == 7
    token = register_and_login(client, "log@example.com")  # a user's copy carries its original's leaf
    mine = client.post("/api/predictions/generate", json={"symbol": world["tickers"][0], "timeframe": "1d"},
                       headers=bearer(token)).json()
    original = answers[4]
    assert mine["prediction_id"] != original["prediction_id"] and mine["ledger"] == original["ledger"]
    again = client.get(f"/api/predictions/{mine['prediction_id']}", headers=bearer(token)).json()
    assert again["ledger"] == original["ledger"]
    stored = client.get(f"/api/predictions/{answers[0]['prediction_id']}").json()
    assert stored["ledger"] == answers[0]["ledger"]
    for _ in range(3):
        client.post("/ml/predict", json={"symbol": world["tickers"][1], "timeframe": "1d"})
    later = _proven(client, answers[6])
    assert later.size == 10
    proof = client.get("/api/ledger/proof/consistency?first=7&second=10").json()
    assert tlog_client.roots_from_consistency(7, 10, first.root, [_b64(x) for x in proof["hashes"]]) == (
        first.root, later.root)


def test_tiles_hold_the_leaves_and_the_entries(world) -> None:
    client = client_for(world, QUOTA_ANONYMOUS="1000")
    for i in range(5):
        client.post("/ml/predict", json={"symbol": world["tickers"][i % 4], "timeframe": "1d"})
    hashes = client.get("/ledger/tile/0/000.p/5")
    assert hashes.status_code == 200 and hashes.headers["cache-control"] == "no-cache"
    leaves = [hashes.content[i:i + 32] for i in range(0, 160, 32)]
    entries = unbundle(client.get("/ledger/tile/entries/000.p/5").content)
    assert [hashlib.sha256(b"\x00" + e).digest() for e in entries] == leaves
    assert entries[3].decode() == client.get("/api/ledger/4").json()["canonical_json"]
    checkpoint = tlog_client.read_checkpoint(client.get("/ledger/checkpoint").text, client.get("/api/ledger/key").json()["vkey"])
    assert tlog_client.mth(entries) == checkpoint.root
    assert client.get("/ledger/tile/0/000.p/3").status_code == 200  # an older tree's partial tile
    for path, status in (("/ledger/tile/0/000.p/6", 404), ("/ledger/tile/0/000", 404), ("/ledger/tile/0/1", 404),
                         ("/api/ledger/proof/inclusion?index=5&tree_size=5", 400),
                         ("/api/ledger/proof/inclusion?index=0&tree_size=6", 400),
                         ("/api/ledger/proof/inclusion?index=-1&tree_size=5", 422),
                         ("/api/ledger/proof/consistency?first=4&second=3", 400),
                         ("/api/ledger/proof/consistency?first=0&second=3", 422)):
        r = client.get(path)
        assert r.status_code == status, (path, r.text)
        assert "error" in r.json() or status == 422


def test_made_at_never_goes_back_and_a_replay_is_never_entered(world) -> None:
    engine, clock = world["engine"], world["clock"]
    market = MarketView(engine, world["cache"], world["market"], lambda tf: 20, clock)
    service = PredictionService(engine, MemoryCache(), market, ModelRegistry(engine, world["tmp"] / "models"),
                                flat_forecast(world["model_id"]))
    first = service.generate(ForecastAsk(world["tickers"][0], "1d"), use_cache=False)
    clock.now -= timedelta(seconds=5)  # another replica whose clock is behind
    second = service.generate(ForecastAsk(world["tickers"][1], "1d"), use_cache=False)
    assert second["created_at"] == first["created_at"]
    assert ledger.verify(engine).ok
    replay = PredictionService(engine, MemoryCache(), market, ModelRegistry(engine, world["tmp"] / "models"),
                               flat_forecast(world["model_id"]), in_log=False)
    answer = replay.generate(ForecastAsk(world["tickers"][2], "1d"), use_cache=False)
    assert answer["replay"] is True and answer["ledger"] is None
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM ledger_entries")).scalar() == 2
        assert conn.execute(sa.text("SELECT count(*) FROM ledger_leaves")).scalar() == 2


def test_the_log_tables_are_append_only(world) -> None:
    client_for(world).post("/ml/predict", json={"symbol": world["tickers"][0], "timeframe": "1d"})
    for statement in ("UPDATE ledger_tree SET hash = hash", "DELETE FROM ledger_leaves",
                      "UPDATE ledger_leaves SET body = 'x'"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), world["engine"].begin() as conn:
            conn.execute(sa.text(statement))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_existing_ledger_becomes_the_logs_first_leaves(request, tmp_path, backend: str) -> None:
    """Migration 0010 on a ledger of 0009's (entries chained, no tree): the same entries, in order,
    become leaves 0..n-1, the chain still verifies and the forecasts name their entries."""
    import uuid
    from datetime import datetime

    from storage.db import make_engine
    from storage.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else request.getfixturevalue("pg_database_url")
    upgrade(url, "0009")
    engine = make_engine(url)
    symbol_id, model_id, prev, canon = uuid.uuid4(), uuid.uuid4(), ledger.GENESIS, []
    made = datetime(2026, 1, 1)

    def u(value: uuid.UUID) -> str:  # a Uuid column as each database stores it
        return value.hex if backend == "sqlite" else str(value)

    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO symbols (id, ticker, name, is_active) VALUES (:id, 'X:OLDUSD', 'Old', true)"),
                     {"id": u(symbol_id)})
        conn.execute(sa.text("INSERT INTO models (id, timeframe, version, training_start, training_end, num_symbols, "
                             "model_path, trained_at, is_active) VALUES (:id, '1d', 'v-old', :t, :t, 1, '/x', :t, true)"),
                     {"id": u(model_id), "t": made})
        for seq in range(1, 6):
            pid, at = uuid.uuid4(), made + timedelta(hours=seq)
            conn.execute(sa.text("INSERT INTO predictions (id, symbol_id, timeframe, model_id, prediction_date, "
                                 "predict_until, num_steps, created_at) VALUES (:id, :s, '1d', :m, :at, :at, 2, :at)"),
                         {"id": u(pid), "s": u(symbol_id), "m": u(model_id), "at": at})
            steps = tuple(ledger.Step(n, datetime(2026, 1, 2) + timedelta(days=n), 1.5 * seq + n, 1.0, 9.0) for n in (1, 2))
            for s in steps:
                conn.execute(sa.text("INSERT INTO prediction_steps (id, prediction_id, step_number, timestamp, open, high, "
                                     "low, close, lower, upper) VALUES (:id, :p, :n, :t, :c, :c, :c, :c, :lo, :hi)"),
                             {"id": u(uuid.uuid4()), "p": u(pid), "n": s.step, "t": s.timestamp, "c": s.close, "lo": s.lower,
                              "hi": s.upper})
            text = ledger.canonical_json(ledger.Record(seq, pid, "X:OLDUSD", "1d", "v-old", at, steps))
            digest = ledger.chain_hash(text, prev)
            conn.execute(sa.text("INSERT INTO ledger_entries (seq, prediction_id, made_at, prev_hash, hash) "
                                 "VALUES (:seq, :p, :at, :prev, :h)"), {"seq": seq, "p": u(pid), "at": at, "prev": prev, "h": digest})
            prev = digest
            canon.append(text.encode())
    upgrade(url)
    log = TransparencyLog(engine, Signer.generate("test.invalid/ledger"), 0.0)
    checkpoint = tlog_client.read_checkpoint(log.checkpoint(), log.signer.verifier.vkey)
    assert checkpoint.size == 5 and checkpoint.root == tlog_client.mth(canon)
    assert ledger.verify(engine).ok
    with engine.connect() as conn:
        seqs = conn.execute(sa.text("SELECT p.ledger_seq, l.seq FROM predictions p JOIN ledger_entries l "
                                    "ON l.prediction_id = p.id")).all()
    assert all(a == b for a, b in seqs) and len(seqs) == 5
    engine.dispose()


def test_the_audit_recomputes_the_log_and_names_what_was_changed(world, capsys) -> None:
    from jobs import verify_ledger
    from transparency.audit import audit

    client = client_for(world, QUOTA_ANONYMOUS="1000")
    for i in range(9):
        client.post("/ml/predict", json={"symbol": world["tickers"][i % 4], "timeframe": "1d"})
    log = client.app.state.log
    log.checkpoint()
    result = verify_ledger.audit_log(world["engine"], log.signer.verifier)
    assert result.ok and (result.leaves, result.nodes, result.checkpoint_size) == (9, 7, 9)
    assert "the checkpoint of size 9 signed by" in capsys.readouterr().out
    assert not audit(world["engine"], Signer.generate("someone.else").verifier).ok  # not the log's key
    with world["engine"].begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET session_replication_role = replica"))
        else:
            conn.execute(sa.text("DROP TRIGGER ledger_tree_no_update"))
            conn.execute(sa.text("DROP TRIGGER ledger_leaves_no_update"))
        conn.execute(sa.text("UPDATE ledger_tree SET hash = :h WHERE level = 2 AND idx = 1"), {"h": bytes(32)})
    assert audit(world["engine"], log.signer.verifier).failure == "tree node (2, 1) is not the hash of its two children"
    with world["engine"].begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET session_replication_role = replica"))
        conn.execute(sa.text("UPDATE ledger_leaves SET body = replace(body, :was, :now) WHERE idx = 6"),
                     {"was": '"close":', "now": '"close":1'})
    failure = audit(world["engine"], log.signer.verifier).failure or ""
    assert failure.startswith("leaf 6:"), failure


def test_a_bad_signing_key_or_witness_key_names_its_variable(tmp_path) -> None:
    from config import ConfigError, load_settings
    from storage.db import make_engine
    from transparency.log import for_settings

    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    for env, named in (({"LEDGER_SIGNING_KEY": "not base64!"}, "LEDGER_SIGNING_KEY"),
                       ({"LEDGER_WITNESSES": "w+0000+AAAA"}, "LEDGER_WITNESSES"),
                       ({"LEDGER_WITNESSES": Signer.generate("w").verifier.vkey}, "LEDGER_WITNESSES")):
        with pytest.raises(ConfigError, match=named):
            for_settings(engine, load_settings(env).ledger, str(tmp_path))
    made = for_settings(engine, load_settings({}).ledger, str(tmp_path / "state"))  # made once, then read back
    assert for_settings(engine, load_settings({}).ledger, str(tmp_path / "state")).signer.verifier == made.signer.verifier
    engine.dispose()
