"""The track record: `ledger_entries`, an append-only hash chain of the forecasts served
anonymously (the shared forecast every user's copy is made from).

- One row per forecast, entered in the transaction that stores the prediction, so a forecast is
  never served without its entry. `seq` has no gaps: appends take a transaction-scoped lock on
  PostgreSQL (an advisory lock, taken with the head by `ledger_locked_head`) and SQLite has one
  writer at a time.
- `hash` = SHA-256 of the forecast's canonical JSON (symbol, timeframe, model version, made_at,
  origin candle, every step's time, close and band; `predictions.ledger`) followed by the
  previous entry's `hash`.
- Append-only, enforced in the database: triggers refuse UPDATE and DELETE (and TRUNCATE on
  PostgreSQL) for every role that does not disable them. A superuser can still disable the
  triggers, and anyone with the SQLite file can rewrite it; then `jobs.verify_ledger` names
  the first entry that no longer verifies, and a published head hash shows a rewritten tail.
- `prediction_id` is ON DELETE RESTRICT: a forecast in the record cannot be deleted.
- Forecasts stored before this migration are not entered: their hash would attest, today, to
  what was made earlier, which is exactly what a track record must not do.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

REFUSED = "ledger_entries is append-only"


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("prediction_id", sa.Uuid, sa.ForeignKey("predictions.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("made_at", sa.DateTime, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("prediction_id", name="uq_ledger_entries_prediction_id"),
        sa.UniqueConstraint("hash", name="uq_ledger_entries_hash"),
    )
    op.create_index("idx_ledger_entries_made_at", "ledger_entries", ["made_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{REFUSED}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
            END $$""")
        # the append's lock and the head it then reads, in one round trip: a VOLATILE function's
        # statements each take a fresh snapshot, so the head read after the lock is the latest
        op.execute("""
            CREATE FUNCTION ledger_locked_head(lock_key bigint) RETURNS TABLE (seq bigint, hash varchar)
            LANGUAGE plpgsql VOLATILE AS $$
            BEGIN
                PERFORM pg_advisory_xact_lock(lock_key);
                RETURN QUERY SELECT l.seq, l.hash FROM ledger_entries l ORDER BY l.seq DESC LIMIT 1;
            END $$""")
        op.execute("CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()")
        op.execute("CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries "
                   "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()")
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER ledger_entries_no_{operation.lower()} BEFORE {operation} ON ledger_entries "
                       f"BEGIN SELECT RAISE(ABORT, '{REFUSED}: {operation} refused'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_truncate ON ledger_entries")
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries")
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
        op.execute("DROP FUNCTION IF EXISTS ledger_locked_head(bigint)")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_update")
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_delete")
    op.drop_table("ledger_entries")
