"""`model_accuracy` gains the band's proper scores per model, horizon and day: the mean interval
score of the served 80 % band, of naive's band on the same steps (from the naive band stored with
each step since 0007), and the pinball losses of the band's ends at 10 % and 90 %, all in the
close's log-return units. Nullable: days scored before this migration have none, and steps stored
before 0007 have no naive band.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = ("interval_score", "naive_interval_score", "pinball_10", "pinball_90")


def upgrade() -> None:
    with op.batch_alter_table("model_accuracy") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Double))


def downgrade() -> None:
    with op.batch_alter_table("model_accuracy") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
