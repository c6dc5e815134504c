"""An audit of the whole log from the database: every kept leaf hashed again, every stored node of
the tree recomputed level by level and compared, and the root checked against the newest signed
checkpoint. Reads each table once, in key order; memory holds one level's hashes at a time."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage.schema import LedgerCheckpoint
from transparency import merkle, store
from transparency.note import NoteError, Verifier, read_checkpoint

BATCH = 20_000


@dataclass
class Audit:
    leaves: int = 0
    nodes: int = 0
    checkpoint_size: int | None = None
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def _leaf_hashes(engine: Engine, result: Audit, progress: Callable[[int, int], None] | None) -> list[bytes] | None:
    """Each kept text hashed again and compared with its stored leaf, read together in key order."""
    sha = hashlib.sha256
    leaves = store.LEAVES
    level0: list[bytes] = []
    with engine.connect() as conn:
        size = store.size(conn)
        postgres = conn.dialect.name == "postgresql"
        # PostgreSQL hashes each text where it is stored (sha256 in C, only 32 bytes handed over)
        text = (sa.func.sha256(sa.literal(b"\x00", sa.LargeBinary).op("||")(sa.func.convert_to(leaves.c.body, "UTF8")))
                if postgres else leaves.c.body)
        for first in range(0, size, BATCH):
            count = min(BATCH, size - first)
            rows = conn.execute(sa.select(leaves.c.idx, text.label("body"))
                                .where(leaves.c.idx >= first, leaves.c.idx < first + count).order_by(leaves.c.idx)).all()
            if len(rows) != count:
                result.failure = f"the log lacks entries between index {first} and {first + count - 1}"
                return None
            for (idx, body), kept in zip(rows, store.level_range(conn, 0, first, count)):
                leaf = bytes(body) if postgres else sha(b"\x00" + body.encode("utf-8")).digest()
                if idx != len(level0) or leaf != kept:
                    result.failure = f"leaf {len(level0)}: its kept text no longer hashes to the tree's leaf"
                    return None
                level0.append(leaf)
            result.leaves += count
            if progress is not None:
                progress(result.leaves, size)
    return level0


def audit(engine: Engine, log_key: Verifier, progress: Callable[[int, int], None] | None = None) -> Audit:
    """Recompute the log and check it against its newest checkpoint signed by `log_key`."""
    result = Audit()
    level = _leaf_hashes(engine, result, progress)
    if level is None:
        return result
    size = len(level)
    with engine.connect() as conn:
        height = 0
        while len(level) > 1:
            height += 1
            level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            stored = store.level_range(conn, height, 0, len(level))
            bad = next((i for i, (a, b) in enumerate(zip(level, stored)) if a != b), None)
            if bad is not None:
                result.failure = f"tree node ({height}, {bad}) is not the hash of its two children"
                return result
            result.nodes += len(level)
        row = conn.execute(sa.select(LedgerCheckpoint.__table__.c.note)
                           .order_by(LedgerCheckpoint.__table__.c.tree_size.desc()).limit(1)).scalar()
        if row is None:
            return result
        try:
            checkpoint, _ = read_checkpoint(row, log_key)
        except NoteError as exc:
            result.failure = f"the newest checkpoint: {exc}"
            return result
        result.checkpoint_size = checkpoint.size
        if checkpoint.size > size:
            result.failure = f"the newest checkpoint has {checkpoint.size} entries; the log holds {size}"
            return result
        nodes_fn = store.reader(conn, lambda n: merkle.root(checkpoint.size, n))
        if merkle.root(checkpoint.size, nodes_fn) != checkpoint.root:
            result.failure = f"the tree of {checkpoint.size} entries is not the one its signed checkpoint names"
    return result
