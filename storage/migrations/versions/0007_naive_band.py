"""`prediction_steps.naive_lower` and `naive_upper`: naive's 80 % band at each served step (the
last close carried forward, with the band the forecaster would state for it), kept beside the
model's band so that the track record can score the served band against naive's with a proper
score (the interval score), not by coverage alone. Nullable: steps stored before this migration
have no naive band and are left out of that ratio.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_steps") as batch:
        batch.add_column(sa.Column("naive_lower", sa.Double))
        batch.add_column(sa.Column("naive_upper", sa.Double))


def downgrade() -> None:
    with op.batch_alter_table("prediction_steps") as batch:
        batch.drop_column("naive_upper")
        batch.drop_column("naive_lower")
