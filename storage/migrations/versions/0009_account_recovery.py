"""Accounts people can live with: what a user's list of sessions shows, single-use mailed tokens
for email verification and password reset, and the per-address log that rate-limits "forgot
password".

- `sessions.last_used_at`, `client` (the address truncated to its network) and `user_agent`:
  a user ending a stolen session must be able to tell their sessions apart.
- `account_tokens`: the SHA-256 of each mailed token (never the token), its purpose, expiry and
  use; its id is the idempotency key of the email, and `email_status` says whether it went out.
  Cascades with the user.
- `auth_requests`: "forgot password" answers alike whether the email has an account, so its
  rate limit counts requests per client address, not per account.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("last_used_at", sa.DateTime))
        batch.add_column(sa.Column("client", sa.String(64)))
        batch.add_column(sa.Column("user_agent", sa.String(255)))
    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), unique=True, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("used_at", sa.DateTime),
        sa.Column("email_status", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("provider_id", sa.String(255)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.CheckConstraint("purpose IN ('verify_email', 'reset_password')", name="ck_account_tokens_purpose"),
        sa.CheckConstraint("email_status IN ('pending', 'sent', 'failed', 'not_sent')",
                           name="ck_account_tokens_email_status"),
    )
    op.create_index("idx_account_tokens_user_purpose", "account_tokens", ["user_id", "purpose", "created_at"])
    op.create_table(
        "auth_requests",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("idx_auth_requests_kind_client", "auth_requests", ["kind", "client", "created_at"])


def downgrade() -> None:
    op.drop_index("idx_auth_requests_kind_client", table_name="auth_requests")
    op.drop_table("auth_requests")
    op.drop_index("idx_account_tokens_user_purpose", table_name="account_tokens")
    op.drop_table("account_tokens")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("user_agent")
        batch.drop_column("client")
        batch.drop_column("last_used_at")
