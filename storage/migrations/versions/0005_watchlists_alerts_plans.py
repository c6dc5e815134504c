"""Phase II: watchlists, watchlist_items, alerts, alert_logs, trading_plans.

- `watchlists`, `watchlist_items`, `alerts`, `trading_plans`: the specified tables,
  every column, default, check, unique, foreign key (with its ON DELETE) and index. Prices
  (target, entry, stop) are double precision rather than NUMERIC(20, 8), as for the forecasts:
  eight decimals keep three or four significant digits of a coin priced near 1e-5.
- `alert_logs` is named by the document without a schema. One row per trigger of an alert:
  which alert, when, the price that triggered it and the previous scan's price (what a
  "crossing" compared), the channel (email, or log when no email provider is configured), and
  what became of the notification: status pending | sent | failed | not_sent, the attempts made
  (a failed send is retried on later scans, at most 3 times), the provider's message id or the
  reason it was not sent, and when it was delivered. The trigger and its row are written in one
  transaction and the row's id is the provider's idempotency key, so a scanner that dies
  between the trigger and the send notifies exactly once after it restarts. UNIQUE(alert_id,
  triggered_at) keeps two scanners from logging the same trigger twice.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    is_pg = op.get_bind().dialect.name == "postgresql"
    return sa.Column("id", sa.Uuid, primary_key=True,
                     server_default=sa.text("gen_random_uuid()") if is_pg else None)


def _fk(name: str, table: str) -> sa.Column:
    return sa.Column(name, sa.Uuid, sa.ForeignKey(f"{table}.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "watchlists", _id(), _fk("user_id", "users"),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("is_default", sa.Boolean, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime, server_default=sa.func.now()),
    )
    op.create_index("idx_watchlists_user_id", "watchlists", ["user_id"])

    op.create_table(
        "watchlist_items", _id(), _fk("watchlist_id", "watchlists"), _fk("symbol_id", "symbols"),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        sa.Column("added_at", sa.DateTime, server_default=sa.func.now()),
        sa.UniqueConstraint("watchlist_id", "symbol_id", name="uq_watchlist_items_watchlist_symbol"),
    )
    op.create_index("idx_watchlist_items_watchlist_id", "watchlist_items", ["watchlist_id"])
    op.create_index("idx_watchlist_items_symbol_id", "watchlist_items", ["symbol_id"])

    op.create_table(
        "alerts", _id(), _fk("user_id", "users"), _fk("symbol_id", "symbols"),
        sa.Column("condition_type", sa.String(20), nullable=False),
        sa.Column("target_price", sa.Double, nullable=False),
        sa.Column("is_active", sa.Boolean, server_default=sa.true()),
        sa.Column("expires_at", sa.DateTime),
        sa.Column("triggered_at", sa.DateTime),
        sa.Column("notified_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, server_default=sa.func.now()),
        sa.CheckConstraint("condition_type IN ('above', 'below', 'crossing')", name="ck_alerts_condition_type"),
    )
    op.create_index("idx_alerts_user_id", "alerts", ["user_id"])
    op.create_index("idx_alerts_symbol_id", "alerts", ["symbol_id"])
    op.create_index("idx_alerts_active", "alerts", ["is_active"])

    op.create_table(
        "alert_logs", _id(), _fk("alert_id", "alerts"),
        sa.Column("triggered_at", sa.DateTime, nullable=False),
        sa.Column("price", sa.Double, nullable=False),
        sa.Column("previous_price", sa.Double),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("detail", sa.Text),
        sa.Column("provider_id", sa.String(255)),
        sa.Column("notified_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, server_default=sa.func.now()),
        sa.UniqueConstraint("alert_id", "triggered_at", name="uq_alert_logs_alert_triggered"),
    )
    op.create_index("idx_alert_logs_alert_id", "alert_logs", ["alert_id"])
    op.create_index("idx_alert_logs_pending", "alert_logs", ["status"])

    op.create_table(
        "trading_plans", _id(), _fk("user_id", "users"), _fk("symbol_id", "symbols"),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("entry_price", sa.Double),
        sa.Column("target_price", sa.Double),
        sa.Column("stop_loss", sa.Double),
        sa.Column("risk_reward", sa.Numeric(5, 2)),
        sa.Column("status", sa.String(20), server_default="active"),
        sa.Column("notes", sa.Text),
        sa.Column("created_at", sa.DateTime, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime, server_default=sa.func.now()),
        sa.Column("closed_at", sa.DateTime),
        sa.CheckConstraint("status IN ('active', 'closed', 'paused')", name="ck_trading_plans_status"),
    )
    op.create_index("idx_trading_plans_user_id", "trading_plans", ["user_id"])
    op.create_index("idx_trading_plans_symbol_id", "trading_plans", ["symbol_id"])


def downgrade() -> None:
    for table in ("trading_plans", "alert_logs", "alerts", "watchlist_items", "watchlists"):
        op.drop_table(table)
