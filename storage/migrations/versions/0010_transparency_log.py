"""The public transparency log (RFC 9162 Merkle tree over the ledger; `transparency`).

- `ledger_leaves`: leaf i (entry seq i + 1) is the canonical JSON the entry hashes, kept as written.
- `ledger_tree`: every complete subtree's hash (level 0: the leaves), written with the entry that
  completes it, so that an inclusion or consistency proof, a root or a tile reads O(log n) rows.
- `ledger_checkpoints`: the signed checkpoints (C2SP tlog-checkpoint) the log has published;
  `ledger_cosignatures`: witnesses' cosignatures of them.
- `predictions.ledger_seq`: the entry of a forecast (a user's copy carries its original's).
- `ledger_locked_tip`: the appends' lock and the tip (seq, hash, made_at) in one round trip; the
  appends now take it before the forecast's rows are written, so those rows name their entry and
  made_at never goes back past the previous entry's. It replaces 0006's `ledger_locked_head`.
- All four log tables are append-only (triggers, as `ledger_entries`).
- On PostgreSQL built with lz4, the kept texts are compressed with lz4 rather than pglz: an
  audit reads every one, and lz4 unpacks them about twice as fast (bench.ledger).
- Existing entries become the first leaves, in order, with their nodes; the old hash chain keeps
  verifying (it is unchanged).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = ("ledger_leaves", "ledger_tree", "ledger_checkpoints", "ledger_cosignatures")
BACKFILL_BATCH = 2000


def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":  # ledger_append_only() is migration 0006's
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()")
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END")


def _backfill() -> None:
    """Existing entries as the first leaves: their canonical JSON rebuilt as the ledger hashes it."""
    from predictions import ledger
    from transparency import store

    conn = op.get_bind()
    last = conn.execute(sa.text("SELECT max(seq) FROM ledger_entries")).scalar()
    for first in range(1, int(last or 0) + 1, BACKFILL_BATCH):
        found = ledger._entries(conn, first, first + BACKFILL_BATCH - 1, quantiles=False)  # before 0012
        bodies = []
        for entry, record in found:
            if record is None:
                raise RuntimeError(f"ledger entry {entry.seq}: its forecast is gone; the log cannot be built")
            bodies.append(ledger.canonical_json(record).encode("utf-8"))
        store.append_leaves(conn, first - 1, bodies)
    conn.execute(sa.text("UPDATE predictions SET ledger_seq = (SELECT l.seq FROM ledger_entries l "
                         "WHERE l.prediction_id = predictions.id)"))


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("ledger_seq", sa.BigInteger))
    op.create_table("ledger_leaves",
                    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
                    sa.Column("body", sa.Text, nullable=False))
    op.create_table("ledger_tree",
                    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
                    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
                    sa.Column("hash", sa.LargeBinary(32), nullable=False))
    op.create_table("ledger_checkpoints",
                    sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
                    sa.Column("root", sa.LargeBinary(32), nullable=False),
                    sa.Column("made_at", sa.DateTime, nullable=False),
                    sa.Column("note", sa.Text, nullable=False))
    op.create_table("ledger_cosignatures",
                    sa.Column("tree_size", sa.BigInteger, sa.ForeignKey("ledger_checkpoints.tree_size"),
                              primary_key=True, autoincrement=False),
                    sa.Column("witness", sa.String(255), primary_key=True),
                    sa.Column("line", sa.Text, nullable=False),
                    sa.Column("received_at", sa.DateTime, nullable=False))
    if op.get_bind().dialect.name == "postgresql":
        lz4 = op.get_bind().execute(sa.text("SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
                                            "AND 'lz4' = ANY(enumvals)")).first()
        if lz4 is not None:
            op.execute("ALTER TABLE ledger_leaves ALTER COLUMN body SET COMPRESSION lz4")
        op.execute("""
            CREATE FUNCTION ledger_locked_tip(lock_key bigint)
            RETURNS TABLE (seq bigint, hash varchar, made_at timestamp)
            LANGUAGE plpgsql VOLATILE AS $$
            BEGIN
                PERFORM pg_advisory_xact_lock(lock_key);
                RETURN QUERY SELECT l.seq, l.hash, l.made_at FROM ledger_entries l ORDER BY l.seq DESC LIMIT 1;
            END $$""")
        op.execute("DROP FUNCTION ledger_locked_head(bigint)")
    _backfill()
    for table in TABLES:
        _append_only(table)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in reversed(TABLES):
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        op.drop_table(table)
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS ledger_locked_tip(bigint)")
        op.execute("""
            CREATE FUNCTION ledger_locked_head(lock_key bigint) RETURNS TABLE (seq bigint, hash varchar)
            LANGUAGE plpgsql VOLATILE AS $$
            BEGIN
                PERFORM pg_advisory_xact_lock(lock_key);
                RETURN QUERY SELECT l.seq, l.hash FROM ledger_entries l ORDER BY l.seq DESC LIMIT 1;
            END $$""")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("ledger_seq")
