"""Phase II identity and Phase III usage: users, sessions, usage_tracking, anonymous_usage, and
the foreign key from predictions.user_id to users (ON DELETE SET NULL).

- `users`, `sessions`, `usage_tracking`: the specified tables, column for column.
  `sessions.session_token` holds the SHA-256 of the token the user holds, never the token.
- No `accounts` table: sign-in is by email and password only. OAuth-style providers (the
  document's NextAuth heritage) would add it; until one is offered it would be an empty table.
- `anonymous_usage` is ours: anonymous callers get a daily quota per client
  address that must hold across replicas and nodes, and `usage_tracking.user_id` is NOT NULL
  with a foreign key to `users`, so anonymous counts need their own table, in the same style
  (one row per client and UTC day). The address is kept only as its SHA-256.
- Phase I rows survive: the foreign key is added in place (batch mode rebuilds the table on
  SQLite, copying every row); existing predictions have no user, which the key allows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TIER_CHECK = "tier IN ('free', 'premium', 'pro')"
TIMEFRAME_CHECK = "timeframe IN ('1h', '4h', '1d', '1w', '1m')"


def _id() -> sa.Column:
    is_pg = op.get_bind().dialect.name == "postgresql"
    return sa.Column(
        "id", sa.Uuid, primary_key=True, server_default=sa.text("gen_random_uuid()") if is_pg else None
    )


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "users",
        _id(),
        sa.Column("email", sa.String(255), nullable=False, unique=True),
        sa.Column("email_verified", sa.DateTime),
        sa.Column("name", sa.String(255)),
        sa.Column("image", sa.Text),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("tier", sa.String(20), server_default="free"),
        _created_at(),
        sa.Column("updated_at", sa.DateTime, server_default=sa.func.now()),
        sa.CheckConstraint(TIER_CHECK, name="ck_users_tier"),
    )
    op.create_index("idx_users_email", "users", ["email"])
    op.create_index("idx_users_tier", "users", ["tier"])

    op.create_table(
        "sessions",
        _id(),
        sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("session_token", sa.String(255), nullable=False, unique=True),
        sa.Column("expires", sa.DateTime, nullable=False),
        _created_at(),
    )
    op.create_index("idx_sessions_user_id", "sessions", ["user_id"])
    op.create_index("idx_sessions_token", "sessions", ["session_token"])

    op.create_table(
        "usage_tracking",
        _id(),
        sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("api_calls", sa.Integer, server_default="0"),
        sa.Column("limit", sa.Integer, nullable=False),
        _created_at(),
        sa.UniqueConstraint("user_id", "date", name="uq_usage_tracking_user_date"),
    )
    op.create_index("idx_usage_tracking_user_id", "usage_tracking", ["user_id"])
    op.create_index("idx_usage_tracking_date", "usage_tracking", ["date"])

    op.create_table(
        "anonymous_usage",
        _id(),
        sa.Column("client_hash", sa.String(64), nullable=False),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("api_calls", sa.Integer, server_default="0"),
        sa.Column("limit", sa.Integer, nullable=False),
        _created_at(),
        sa.UniqueConstraint("client_hash", "date", name="uq_anonymous_usage_client_date"),
    )
    op.create_index("idx_anonymous_usage_date", "anonymous_usage", ["date"])

    # SQLite does not reflect CHECK constraints into batch mode's copy: name it again.
    with op.batch_alter_table(
        "predictions", table_args=(sa.CheckConstraint(TIMEFRAME_CHECK, name="ck_predictions_timeframe"),)
    ) as batch:
        batch.create_foreign_key("fk_user", "users", ["user_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_constraint("fk_user", type_="foreignkey")
    op.drop_table("anonymous_usage")
    op.drop_table("usage_tracking")
    op.drop_table("sessions")
    op.drop_table("users")
