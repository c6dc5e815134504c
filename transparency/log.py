"""The log as the service publishes it: signed checkpoints (a new one at most every
`checkpoint_s` while entries arrive), inclusion and consistency proofs, tiles, and the
cosignatures of the witnesses it is configured with."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from clock import naive_utc, utc_now
from config import ConfigError, LedgerSettings
from storage.schema import LedgerCheckpoint, LedgerCosignature
from transparency import keys, merkle, store
from transparency.note import COSIGNATURE_V1, Checkpoint, Note, NoteError, Signer, Verifier
from transparency.tiles import Tile, bundle

CHECKPOINTS, COSIGNATURES = LedgerCheckpoint.__table__, LedgerCosignature.__table__


class LogError(ValueError):
    """A request the log cannot answer: the HTTP status, an error code and the reason."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Proof:
    leaf_hash: bytes | None
    hashes: list[bytes]


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


class TransparencyLog:
    def __init__(self, engine: Engine, signer: Signer, checkpoint_s: float = 10.0,
                 witnesses: tuple[Verifier, ...] = (), clock: Callable[[], datetime] = utc_now) -> None:
        self.engine, self.signer, self.checkpoint_s = engine, signer, checkpoint_s
        self.witnesses, self.clock = witnesses, clock

    @property
    def origin(self) -> str:
        return self.signer.name

    # -- checkpoints ----------------------------------------------------------------------------
    def checkpoint(self) -> str:
        """The newest checkpoint as a signed note with its witnesses' cosignatures; a new one is
        signed when the tree has grown and the last is `checkpoint_s` old (or there is none)."""
        now = naive_utc(self.clock())
        with self.engine.begin() as conn:
            last = conn.execute(sa.select(CHECKPOINTS).order_by(CHECKPOINTS.c.tree_size.desc()).limit(1)).first()
            size = store.size(conn)
            due = last is None or (size > last.tree_size and (now - last.made_at).total_seconds() >= self.checkpoint_s)
            if due:
                node = store.reader(conn, lambda n: merkle.root(size, n))
                checkpoint = Checkpoint(self.origin, size, merkle.root(size, node))
                conn.execute(_insert_new(conn, CHECKPOINTS, {"tree_size": size, "root": checkpoint.root, "made_at": now,
                                                             "note": checkpoint.sign(self.signer).render()}))
            last = conn.execute(sa.select(CHECKPOINTS).order_by(CHECKPOINTS.c.tree_size.desc()).limit(1)).one()
            return self._with_cosignatures(conn, last.tree_size, last.note)

    def _with_cosignatures(self, conn: Connection, size: int, note_text: str) -> str:
        lines = conn.execute(sa.select(COSIGNATURES.c.line).where(COSIGNATURES.c.tree_size == size)
                             .order_by(COSIGNATURES.c.witness)).scalars().all()
        return note_text + "".join(lines)

    def add_cosignature(self, note_text: str) -> int:
        """Store the cosignatures in `note_text` (a checkpoint this log signed, with witnesses'
        lines) from the configured witnesses; answers how many were new."""
        try:
            note = Note.parse(note_text)
            checkpoint = Checkpoint.parse(note.text)
        except NoteError as exc:
            raise LogError(400, "bad_checkpoint", str(exc)) from None
        with self.engine.begin() as conn:
            stored = conn.execute(sa.select(CHECKPOINTS.c.note).where(CHECKPOINTS.c.tree_size == checkpoint.size)).scalar()
            if stored is None or Note.parse(stored).text != note.text:
                raise LogError(404, "unknown_checkpoint", f"this log published no checkpoint of size {checkpoint.size} "
                                                          "with that root")
            known = [w for w in self.witnesses if note.cosigned_at(w) is not None]
            if not known:
                raise LogError(403, "unknown_witness", "no cosignature in the note verifies under a witness key this "
                                                       "log is configured with (LEDGER_WITNESSES)")
            added = 0
            for witness in known:
                line = next(s.line for s in note.signatures if s.name == witness.name and s.blob[:4] == witness.id)
                row = {"tree_size": checkpoint.size, "witness": witness.name, "line": line,
                       "received_at": naive_utc(self.clock())}
                added += conn.execute(_insert_new(conn, COSIGNATURES, row)).rowcount or 0
            return added

    # -- proofs and tiles -----------------------------------------------------------------------
    def _bounded(self, conn: Connection, tree_size: int, what: str) -> None:
        size = store.size(conn)
        if tree_size > size:
            raise LogError(400, "bad_tree_size", f"{what} {tree_size} is past the log's {size} entries")

    def inclusion(self, index: int, tree_size: int) -> Proof:
        if not 0 <= index < tree_size:
            raise LogError(400, "bad_index", f"index must be in [0, tree_size), got index {index}, tree_size {tree_size}")
        with self.engine.connect() as conn:
            self._bounded(conn, tree_size, "tree_size")
            node = store.reader(conn, lambda n: (merkle.inclusion_proof(index, tree_size, n), n(0, index)))
            return Proof(node(0, index), merkle.inclusion_proof(index, tree_size, node))

    def consistency(self, first: int, second: int) -> Proof:
        if not 1 <= first <= second:
            raise LogError(400, "bad_sizes", f"need 1 <= first <= second, got first {first}, second {second}")
        with self.engine.connect() as conn:
            self._bounded(conn, second, "second")
            node = store.reader(conn, lambda n: merkle.consistency_proof(first, second, n))
            return Proof(None, merkle.consistency_proof(first, second, node))

    def tile(self, tile: Tile) -> bytes:
        with self.engine.connect() as conn:
            tile.within(store.size(conn))
            if tile.level < 0:
                return bundle(store.bodies(conn, tile.first, tile.width))
            return b"".join(store.level_range(conn, tile.node_level, tile.first, tile.width))


def _insert_new(conn: Connection, table: sa.Table, row: dict[str, object]) -> sa.Insert:
    """INSERT that does nothing where the row's key is taken (another replica signed first)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).values(**row).on_conflict_do_nothing()


def for_settings(engine: Engine, settings: LedgerSettings, state_dir: str) -> TransparencyLog:
    """The log of a service: its key (LEDGER_SIGNING_KEY, else the state directory's), its witnesses."""
    signer = keys.log_signer(settings, state_dir)
    try:
        witnesses = tuple(Verifier.parse(vkey) for vkey in settings.witnesses)
    except NoteError as exc:
        raise ConfigError(f"LEDGER_WITNESSES: {exc}") from None
    if any(w.key_type != COSIGNATURE_V1 for w in witnesses):
        raise ConfigError("LEDGER_WITNESSES names a key that is not a witness's cosignature key (type 0x04)")
    return TransparencyLog(engine, signer, settings.checkpoint_s, witnesses)
