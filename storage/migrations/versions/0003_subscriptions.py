"""Phase III billing: subscriptions (the specified table, column for column) and
stripe_events.

- `subscriptions`: one row per Stripe customer of ours; `tier`, `status`, the period and
  `cancel_at_period_end` follow the subscription webhooks.
- `stripe_events` is ours: Stripe delivers each event at least once and in no guaranteed order.
  The event id as primary key, inserted in the same transaction as the change it causes, makes a
  repeated delivery a no-op even when two arrive at once; its creation time and customer let a
  late, older event be recognised and left unapplied (`outcome` says what was done: applied,
  stale, ignored).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIER_CHECK = "tier IN ('free', 'premium', 'pro')"


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Uuid, primary_key=True,
                  server_default=sa.text("gen_random_uuid()") if is_pg else None),
        sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("stripe_customer_id", sa.String(255), nullable=False, unique=True),
        sa.Column("stripe_subscription_id", sa.String(255), unique=True),
        sa.Column("tier", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("current_period_start", sa.DateTime),
        sa.Column("current_period_end", sa.DateTime),
        sa.Column("cancel_at_period_end", sa.Boolean, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime, server_default=sa.func.now()),
        sa.CheckConstraint(TIER_CHECK, name="ck_subscriptions_tier"),
    )
    op.create_index("idx_subscriptions_user_id", "subscriptions", ["user_id"])

    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("customer_id", sa.String(255)),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("processed_at", sa.DateTime, server_default=sa.func.now()),
    )
    op.create_index("idx_stripe_events_customer_created", "stripe_events", ["customer_id", "created"])


def downgrade() -> None:
    op.drop_table("stripe_events")
    op.drop_table("subscriptions")
