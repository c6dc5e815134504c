"""A registration with an address that already has an account tells the owner instead of
answering 409 (`accounts.mailed_tokens.ALREADY_REGISTERED`): its email is recorded as an
`account_tokens` row of the new purpose `already_registered`, whose token is never redeemed (the
row keeps the email's idempotency key, its delivery status and the one-an-hour limit).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BEFORE = "purpose IN ('verify_email', 'reset_password')"
AFTER = "purpose IN ('verify_email', 'reset_password', 'already_registered')"


def _purposes(check: str) -> None:
    with op.batch_alter_table("account_tokens") as batch:  # SQLite: the table rebuilt without the old check
        batch.drop_constraint("ck_account_tokens_purpose", type_="check")
        batch.create_check_constraint("ck_account_tokens_purpose", check)


def upgrade() -> None:
    _purposes(AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM account_tokens WHERE purpose = 'already_registered'")
    _purposes(BEFORE)
