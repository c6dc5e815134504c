"""A witness of the log: it cosigns checkpoints that extend the last one it cosigned, the log
serves the cosignature, and each attack a log operator could try is refused by name: an entry
rewritten (and the tree recomputed), the log truncated, two views of the same size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from jobs import witness as witness_job
from tests import tlog_client
from tests.conftest import client_for
from transparency import keys, store
from transparency.log import TransparencyLog
from transparency.note import Note, Signer, cosign
from transparency.witness import Refused, witness_once

TABLES = ("ledger_leaves", "ledger_tree", "ledger_cosignatures", "ledger_checkpoints")


def _log_with_witness(world: dict[str, Any], state: Path) -> Any:
    client = client_for(world, QUOTA_ANONYMOUS="1000")
    cosigner = keys.witness_signer(state, "witness.test")
    client.app.state.log = TransparencyLog(world["engine"], Signer.generate("test.invalid/ledger"), 0.0, (cosigner.verifier,))
    return client


def _forecasts(client: Any, world: dict[str, Any], n: int) -> None:
    for i in range(n):
        assert client.post("/ml/predict", json={"symbol": world["tickers"][i % 4], "timeframe": "1d"}).status_code == 200


def _rebuild(world: dict[str, Any], size: int, change: int | None = None) -> None:
    """What the database's owner could do: switch the guards off, keep the first `size` entries
    (entry `change` rewritten), recompute the whole tree and throw the old checkpoints away."""
    with world["engine"].begin() as conn:
        bodies = store.bodies(conn, 0, store.size(conn))[:size]
        if change is not None:
            bodies[change] = bodies[change].replace(b'"close":', b'"close":1', 1)
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET session_replication_role = replica"))
        else:
            for table in TABLES:
                for op in ("update", "delete"):
                    conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_no_{op}"))
        for table in TABLES:
            conn.execute(sa.text(f"DELETE FROM {table}"))
        store.append_leaves(conn, 0, bodies)


def test_a_witness_cosigns_what_extends_and_the_log_serves_its_cosignature(world, tmp_path: Path) -> None:
    state = tmp_path / "witness"
    client = _log_with_witness(world, state)
    _forecasts(client, world, 3)
    first = witness_once(client, state, "witness.test")
    assert (first.size, first.previous, first.handed_back) == (3, None, "accepted")
    _forecasts(client, world, 4)
    second = witness_once(client, state, "witness.test")
    assert (second.size, second.previous, second.handed_back) == (7, 3, "accepted")
    note = client.get("/api/ledger/checkpoint").text
    read = tlog_client.read_checkpoint(note, client.get("/api/ledger/key").json()["vkey"])
    assert read.size == 7 and read.cosigners == ("witness.test",)
    assert witness_once(client, state, "witness.test").previous == 7  # nothing new: the same checkpoint again
    other = Signer.generate("stranger", 0x04)  # a cosignature from a witness the log does not know
    unsigned = Note.parse(note.split("\u2014 witness.test")[0])
    forged = Note(unsigned.text, (*unsigned.signatures, cosign(other, unsigned.text, 1))).render()
    r = client.post("/api/ledger/cosignature", content=forged, headers={"Content-Type": "text/plain"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "unknown_witness"
    assert client.post("/api/ledger/cosignature", content="nonsense").status_code == 400
    huge = f"test.invalid/ledger\n{2**64}\n{'A' * 43}=\n\n\u2014 witness.test AAAAAAAA\n"
    assert client.post("/api/ledger/cosignature", content=huge).status_code == 400
    assert client.post("/api/ledger/cosignature", content=b"\xff\xfe").status_code == 400


@pytest.mark.parametrize(("attack", "size", "change", "named"), [
    ("an entry rewritten, more added", 9, 2, "rewrite"),
    ("the log truncated", 4, None, "truncation"),
    ("another view of the same size", 6, 5, "split view"),
])
def test_a_witness_refuses_each_attack_by_name(world, tmp_path: Path, attack: str, size: int, change: int | None,
                                               named: str) -> None:
    state = tmp_path / "witness"
    client = _log_with_witness(world, state)
    _forecasts(client, world, 6)
    assert witness_once(client, state, "witness.test").size == 6
    if size > 6:
        _forecasts(client, world, size - 6)
    _rebuild(world, size, change)
    with pytest.raises(Refused, match=named):
        witness_once(client, state, "witness.test")
    assert tlog_client.read_checkpoint((state / "checkpoint").read_text(), client.get("/api/ledger/key").json()["vkey"]).size == 6


def test_the_witness_job_exits_1_naming_the_attack(world, tmp_path: Path, monkeypatch, capsys) -> None:
    state = tmp_path / "witness"
    client = _log_with_witness(world, state)
    _forecasts(client, world, 5)
    monkeypatch.setattr(witness_job.httpx, "Client", lambda **kw: client)
    assert witness_job.main(["--log", "http://log.invalid", "--state", str(state), "--name", "witness.test", "--once"]) == 0
    assert "cosigned the checkpoint of size 5 (first sight)" in capsys.readouterr().out
    _rebuild(world, 3)
    assert witness_job.main(["--log", "http://log.invalid", "--state", str(state), "--name", "witness.test", "--once"]) == 1
    assert "REFUSED: truncation" in capsys.readouterr().err
    client.app.state.log = TransparencyLog(world["engine"], Signer.generate("test.invalid/ledger"), 0.0)
    assert witness_job.main(["--log", "http://log.invalid", "--state", str(state), "--name", "witness.test", "--once"]) == 1
    assert "REFUSED: key change" in capsys.readouterr().err
