"""Phase I schema: symbols, models, predictions, prediction_steps.

Written by hand from the specified schema; `tests/test_db.py` checks that it produces the
same tables as `storage/schema.py`.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIMEFRAME_CHECK = "timeframe IN ('1h', '4h', '1d', '1w', '1m')"
JsonType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.Column:
    # gen_random_uuid() is built into PostgreSQL 13+; SQLite has no such function, and the
    # application always supplies the id itself, so there the column has no server default.
    is_pg = op.get_bind().dialect.name == "postgresql"
    return sa.Column(
        "id", sa.Uuid, primary_key=True, server_default=sa.text("gen_random_uuid()") if is_pg else None
    )


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "symbols",
        _id(),
        sa.Column("ticker", sa.String(20), nullable=False, unique=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("base_currency", sa.String(10)),
        sa.Column("quote_currency", sa.String(10)),
        sa.Column("is_active", sa.Boolean, server_default=sa.true()),
        sa.Column("volume_24h_usd", sa.Numeric(20, 2)),
        sa.Column("volume_rank", sa.Integer),
        sa.Column("last_updated", sa.DateTime),
        _created_at(),
    )
    op.create_index("idx_symbols_ticker", "symbols", ["ticker"])
    op.create_index("idx_symbols_volume_rank", "symbols", ["volume_rank"])
    op.create_index("idx_symbols_active", "symbols", ["is_active"])

    op.create_table(
        "models",
        _id(),
        sa.Column("timeframe", sa.String(10), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("training_start", sa.DateTime, nullable=False),
        sa.Column("training_end", sa.DateTime, nullable=False),
        sa.Column("num_symbols", sa.Integer, nullable=False),
        sa.Column("top_symbols", JsonType),
        sa.Column("accuracy_avg", sa.Numeric(5, 4)),
        sa.Column("feature_count", sa.Integer),
        sa.Column("model_path", sa.Text, nullable=False),
        sa.Column("is_active", sa.Boolean, server_default=sa.false()),
        sa.Column("trained_at", sa.DateTime, nullable=False),
        _created_at(),
        sa.CheckConstraint(TIMEFRAME_CHECK, name="ck_models_timeframe"),
        sa.UniqueConstraint("timeframe", "version", name="uq_models_timeframe_version"),
    )
    op.create_index("idx_models_timeframe", "models", ["timeframe"])
    op.create_index("idx_models_active", "models", ["is_active"])
    op.create_index(
        "uq_models_one_active",
        "models",
        ["timeframe"],
        unique=True,
        postgresql_where=sa.text("is_active"),
        sqlite_where=sa.text("is_active"),
    )

    op.create_table(
        "predictions",
        _id(),
        sa.Column("symbol_id", sa.Uuid, sa.ForeignKey("symbols.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Uuid),
        sa.Column("timeframe", sa.String(10), nullable=False),
        sa.Column("model_id", sa.Uuid, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("prediction_date", sa.DateTime, nullable=False),
        sa.Column("predict_until", sa.DateTime, nullable=False),
        sa.Column("num_steps", sa.Integer, nullable=False),
        sa.Column("confidence_avg", sa.Numeric(5, 4)),
        sa.Column("direction", sa.String(10)),
        sa.Column("key_indicators", JsonType),
        _created_at(),
        sa.CheckConstraint(TIMEFRAME_CHECK, name="ck_predictions_timeframe"),
    )
    op.create_index("idx_predictions_symbol_id", "predictions", ["symbol_id"])
    op.create_index("idx_predictions_user_id", "predictions", ["user_id"])
    op.create_index("idx_predictions_timeframe", "predictions", ["timeframe"])
    op.create_index("idx_predictions_model_id", "predictions", ["model_id"])
    op.create_index("idx_predictions_created_at", "predictions", ["created_at"])

    op.create_table(
        "prediction_steps",
        _id(),
        sa.Column(
            "prediction_id", sa.Uuid, sa.ForeignKey("predictions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("step_number", sa.Integer, nullable=False),
        sa.Column("timestamp", sa.DateTime, nullable=False),
        sa.Column("open", sa.Double, nullable=False),
        sa.Column("high", sa.Double, nullable=False),
        sa.Column("low", sa.Double, nullable=False),
        sa.Column("close", sa.Double, nullable=False),
        sa.Column("lower", sa.Double),
        sa.Column("upper", sa.Double),
        sa.Column("confidence", sa.Numeric(5, 4)),
        sa.Column("direction", sa.String(10)),
        sa.Column("actual_close", sa.Double),
        sa.Column("is_accurate", sa.Boolean),
        sa.UniqueConstraint("prediction_id", "step_number", name="uq_prediction_steps_prediction_step"),
    )
    op.create_index("idx_prediction_steps_prediction_id", "prediction_steps", ["prediction_id"])
    op.create_index("idx_prediction_steps_timestamp", "prediction_steps", ["timestamp"])


def downgrade() -> None:
    op.drop_table("prediction_steps")
    op.drop_table("predictions")
    op.drop_table("models")
    op.drop_table("symbols")
