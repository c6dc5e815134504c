"""The log's tree in the database: leaves and complete-subtree nodes written with each ledger
entry (in its transaction, under its lock), and the node reads that proofs, roots and tiles are
built from. Pure tree logic lives in `transparency.merkle`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage.schema import LedgerLeaf, LedgerTreeNode
from transparency import merkle

TREE, LEAVES = LedgerTreeNode.__table__, LedgerLeaf.__table__
READ_CHUNK = 500  # node keys per query (SQLite's bound-parameter limit is 32,766)


class TreeError(RuntimeError):
    """The stored tree does not have what an append or a proof needs."""


def size(conn: Connection) -> int:
    """Leaves in the stored tree."""
    last = conn.execute(sa.select(TREE.c.idx).where(TREE.c.level == 0).order_by(TREE.c.idx.desc()).limit(1)).scalar()
    return 0 if last is None else int(last) + 1


def nodes(conn: Connection, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """The stored hashes of `keys` (level, index); TreeError naming the first one missing."""
    found: dict[tuple[int, int], bytes] = {}
    for at in range(0, len(keys), READ_CHUNK):
        chunk = keys[at:at + READ_CHUNK]
        rows = conn.execute(sa.select(TREE.c.level, TREE.c.idx, TREE.c.hash)
                            .where(sa.tuple_(TREE.c.level, TREE.c.idx).in_(chunk))).all()
        found.update({(int(r.level), int(r.idx)): bytes(r.hash) for r in rows})
    missing = [k for k in keys if k not in found]
    if missing:
        raise TreeError(f"the stored tree lacks node {missing[0]} (level, index)")
    return found


def reader(conn: Connection, build: Callable[[merkle.NodeFn], object]) -> merkle.NodeFn:
    """A node function over exactly the nodes `build(node)` reads, fetched in one query."""
    got = nodes(conn, merkle.wanted(build))
    return lambda level, index: got[(level, index)]


def append_leaves(conn: Connection, first: int, bodies: Iterable[bytes]) -> list[bytes]:
    """Enter `bodies` as leaves first, first + 1, ... of a tree that holds `first` leaves now, with
    every node they complete; returns their leaf hashes. The caller holds the ledger's lock."""
    bodies = list(bodies)
    # the stored nodes the new ones hang from: one leaf's left siblings (none for an even index,
    # half the appends), or for a batch the complete subtrees on the right edge
    wanted = merkle.siblings_of(first) if len(bodies) == 1 else merkle.wanted(lambda node: merkle.root(first, node))
    stored = nodes(conn, wanted) if wanted else {}

    def edge(level: int, index: int) -> bytes:
        return stored[(level, index)]

    made: dict[tuple[int, int], bytes] = {}

    def sibling(level: int, index: int) -> bytes:
        return made[(level, index)] if (level, index) in made else edge(level, index)

    leaves, rows, texts = [], [], []
    for index, body in enumerate(bodies, first):
        leaf = merkle.leaf_hash(body)
        for level, idx, digest in merkle.new_nodes(index, leaf, sibling):
            made[(level, idx)] = digest
            rows.append({"level": level, "idx": idx, "hash": digest})
        leaves.append(leaf)
        texts.append({"idx": index, "body": body.decode("utf-8")})
    if len(texts) == 1 and conn.dialect.name == "postgresql":  # one round trip: the leaf's text in a CTE
        conn.execute(TREE.insert().values(rows).add_cte(LEAVES.insert().values(texts).cte("leaf")))
    elif texts:
        conn.execute(LEAVES.insert(), texts)
        conn.execute(TREE.insert(), rows)
    return leaves


def leaf_hashes(conn: Connection, indices: Sequence[int]) -> dict[int, bytes]:
    got = nodes(conn, [(0, i) for i in indices])
    return {i: got[(0, i)] for i in indices}


def level_range(conn: Connection, level: int, first: int, count: int) -> list[bytes]:
    """Hashes of nodes `first`..`first + count - 1` of one level, in order (a tile's contents)."""
    rows = conn.execute(sa.select(TREE.c.hash).where(TREE.c.level == level, TREE.c.idx >= first,
                                                     TREE.c.idx < first + count).order_by(TREE.c.idx)).all()
    if len(rows) != count:
        raise TreeError(f"the stored tree has {len(rows)} of the {count} nodes from ({level}, {first})")
    return [bytes(r.hash) for r in rows]


def bodies(conn: Connection, first: int, count: int) -> list[bytes]:
    rows = conn.execute(sa.select(LEAVES.c.body).where(LEAVES.c.idx >= first, LEAVES.c.idx < first + count)
                        .order_by(LEAVES.c.idx)).all()
    if len(rows) != count:
        raise TreeError(f"the log has {len(rows)} of the {count} entries from index {first}")
    return [r.body.encode("utf-8") for r in rows]
