"""`prediction_steps.q05`, `q25`, `q50`, `q75`, `q95`: each served step's predictive distribution
(its close's 5, 25, 50, 75 and 95 % quantiles; the 10 and 90 % ones are `lower` and `upper`),
what the probability endpoint, the plans and alerts read and the track record scores. Nullable:
steps stored before this migration have no distribution, and their ledger entries keep hashing
without one. `trading_plans.timeframe`: the forecast whose chances a plan answers (default 1d).
`model_accuracy.crps` and `pit_bin_0`..`pit_bin_9`: the served distribution's mean CRPS and the
share of outcomes in each tenth of its PIT, per model, horizon and day (null before).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = ("q05", "q25", "q50", "q75", "q95")
ACCURACY_COLUMNS = ("crps", *(f"pit_bin_{k}" for k in range(10)))


def upgrade() -> None:
    with op.batch_alter_table("prediction_steps") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Double))
    with op.batch_alter_table("trading_plans") as batch:
        batch.add_column(sa.Column("timeframe", sa.String(10), nullable=False, server_default="1d"))
    with op.batch_alter_table("model_accuracy") as batch:
        for name in ACCURACY_COLUMNS:
            batch.add_column(sa.Column(name, sa.Double))


def downgrade() -> None:
    with op.batch_alter_table("model_accuracy") as batch:
        for name in reversed(ACCURACY_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("trading_plans") as batch:
        batch.drop_column("timeframe")
    with op.batch_alter_table("prediction_steps") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
