"""model_accuracy: live accuracy of served forecasts.

The table was specified by name only; its columns are ours. One row per model, timeframe,
horizon (step number) and UTC day holds what the scoring of that day's closed candles found:
the number of steps, the MAE of the close's log return from the forecast's origin, naive's MAE
on the same steps (so that every figure has its baseline beside it), directional accuracy, the
80 % band's coverage, and the mean stated confidence (against which directional accuracy is the
observed hit rate). Rows are recomputed whole when more steps of their day are scored, so a
re-run of the tracker changes nothing. The day is when the steps' candles closed, which makes
"the last 7 days" mean recent outcomes for every horizon. Deleting a model deletes its rows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TIMEFRAME_CHECK = "timeframe IN ('1h', '4h', '1d', '1w', '1m')"


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "model_accuracy",
        sa.Column("id", sa.Uuid, primary_key=True,
                  server_default=sa.text("gen_random_uuid()") if is_pg else None),
        sa.Column("model_id", sa.Uuid, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("timeframe", sa.String(10), nullable=False),
        sa.Column("horizon", sa.Integer, nullable=False),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("mae", sa.Double, nullable=False),
        sa.Column("naive_mae", sa.Double, nullable=False),
        sa.Column("directional_accuracy", sa.Double, nullable=False),
        sa.Column("coverage_80", sa.Double, nullable=False),
        sa.Column("mean_confidence", sa.Double),
        sa.Column("updated_at", sa.DateTime, server_default=sa.func.now()),
        sa.CheckConstraint(TIMEFRAME_CHECK, name="ck_model_accuracy_timeframe"),
        sa.UniqueConstraint("model_id", "timeframe", "horizon", "date", name="uq_model_accuracy_key"),
    )
    op.create_index("idx_model_accuracy_timeframe_date", "model_accuracy", ["timeframe", "date"])


def downgrade() -> None:
    op.drop_table("model_accuracy")
