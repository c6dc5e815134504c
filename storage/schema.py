"""The metadata tables (forecasts, models, accounts, billing, portfolios, accuracy), as SQLModel classes.

They mirror `seed/system-architecture.md` column for column: defaults, unique and check
constraints, foreign keys with their ON DELETE, and the named indexes. The Alembic migration
in `storage/migrations` creates exactly this metadata (a test compares the two).

Two deliberate departures, both additive:
- Prices are DOUBLE PRECISION, not NUMERIC(20, 8). Eight decimal places keep only three or four
  significant digits for coins priced near 1e-5 (PEPE, SHIB), so a forecast of 0.0000123456
  would be stored as 0.00001235. A double keeps ~15 significant digits at every magnitude,
  which matches a model that is scale-free by construction; the forecasts are floats anyway.
- `prediction_steps` also stores the 80 % band (`lower`, `upper`), which the HTTP answer of
  the API returns for every step, also when a stored prediction is read back by id.
Times are naive UTC (`TIMESTAMP` without time zone, as the document defines them).
"""

from __future__ import annotations

import uuid
from datetime import date as date_type
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field, SQLModel

from config import TIERS
from market_data.timeframes import TIMEFRAMES

TIMEFRAME_CHECK = "timeframe IN (" + ", ".join(f"'{tf}'" for tf in TIMEFRAMES) + ")"
TIER_CHECK = "tier IN (" + ", ".join(f"'{t}'" for t in TIERS) + ")"

# JSONB on PostgreSQL, JSON text elsewhere.
JsonType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# See the module docstring: prices keep their significant digits at every magnitude.
PriceType: sa.types.TypeEngine[float] = sa.Double()


class Symbol(SQLModel, table=True):
    __tablename__ = "symbols"
    __table_args__ = (
        sa.Index("idx_symbols_ticker", "ticker"),
        sa.Index("idx_symbols_volume_rank", "volume_rank"),
        sa.Index("idx_symbols_active", "is_active"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    ticker: str = Field(sa_column=sa.Column(sa.String(20), unique=True, nullable=False))
    name: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    base_currency: str | None = Field(default=None, sa_column=sa.Column(sa.String(10)))
    quote_currency: str | None = Field(default=None, sa_column=sa.Column(sa.String(10)))
    is_active: bool | None = Field(default=True, sa_column=sa.Column(sa.Boolean, server_default=sa.true()))
    volume_24h_usd: Decimal | None = Field(default=None, sa_column=sa.Column(sa.Numeric(20, 2)))
    volume_rank: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    last_updated: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime))
    created_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))


class ModelRecord(SQLModel, table=True):
    """One trained model of one timeframe (the `models` table)."""

    __tablename__ = "models"
    __table_args__ = (
        sa.CheckConstraint(TIMEFRAME_CHECK, name="ck_models_timeframe"),
        sa.UniqueConstraint("timeframe", "version", name="uq_models_timeframe_version"),
        sa.Index("idx_models_timeframe", "timeframe"),
        sa.Index("idx_models_active", "is_active"),
        # "At most one active model per timeframe", enforced by the database itself.
        sa.Index(
            "uq_models_one_active",
            "timeframe",
            unique=True,
            postgresql_where=sa.text("is_active"),
            sqlite_where=sa.text("is_active"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    timeframe: str = Field(sa_column=sa.Column(sa.String(10), nullable=False))
    version: str = Field(sa_column=sa.Column(sa.String(50), nullable=False))
    training_start: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))
    training_end: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))
    num_symbols: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    top_symbols: list[str] | None = Field(default=None, sa_column=sa.Column(JsonType))
    accuracy_avg: Decimal | None = Field(default=None, sa_column=sa.Column(sa.Numeric(5, 4)))
    feature_count: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    model_path: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    is_active: bool | None = Field(default=False, sa_column=sa.Column(sa.Boolean, server_default=sa.false()))
    trained_at: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))


class Prediction(SQLModel, table=True):
    __tablename__ = "predictions"
    __table_args__ = (
        sa.CheckConstraint(TIMEFRAME_CHECK, name="ck_predictions_timeframe"),
        sa.Index("idx_predictions_symbol_id", "symbol_id"),
        sa.Index("idx_predictions_user_id", "user_id"),
        sa.Index("idx_predictions_timeframe", "timeframe"),
        sa.Index("idx_predictions_model_id", "model_id"),
        sa.Index("idx_predictions_created_at", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    symbol_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("symbols.id", ondelete="CASCADE"), nullable=False)
    )
    # Nullable: anonymous forecasts have no user; Phase II (migration 0002) added the foreign key.
    user_id: uuid.UUID | None = Field(
        default=None, sa_column=sa.Column(sa.Uuid, sa.ForeignKey("users.id", ondelete="SET NULL", name="fk_user"))
    )
    timeframe: str = Field(sa_column=sa.Column(sa.String(10), nullable=False))
    model_id: uuid.UUID = Field(sa_column=sa.Column(sa.Uuid, sa.ForeignKey("models.id"), nullable=False))
    prediction_date: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))
    predict_until: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))
    num_steps: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    confidence_avg: Decimal | None = Field(default=None, sa_column=sa.Column(sa.Numeric(5, 4)))
    direction: str | None = Field(default=None, sa_column=sa.Column(sa.String(10)))
    key_indicators: list[str] | None = Field(default=None, sa_column=sa.Column(JsonType))
    created_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))
    # Not in the document (migration 0010): the public log's entry of this forecast (a user's copy
    # carries its anonymous original's); NULL for a forecast the log does not hold (replays under
    # SERVE_AS_OF, forecasts stored before the ledger)
    ledger_seq: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))


class PredictionStep(SQLModel, table=True):
    __tablename__ = "prediction_steps"
    __table_args__ = (
        sa.UniqueConstraint("prediction_id", "step_number", name="uq_prediction_steps_prediction_step"),
        sa.Index("idx_prediction_steps_prediction_id", "prediction_id"),
        sa.Index("idx_prediction_steps_timestamp", "timestamp"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    prediction_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("predictions.id", ondelete="CASCADE"), nullable=False)
    )
    step_number: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    timestamp: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))
    open: float = Field(sa_column=sa.Column(PriceType, nullable=False))
    high: float = Field(sa_column=sa.Column(PriceType, nullable=False))
    low: float = Field(sa_column=sa.Column(PriceType, nullable=False))
    close: float = Field(sa_column=sa.Column(PriceType, nullable=False))
    lower: float | None = Field(default=None, sa_column=sa.Column(PriceType))
    upper: float | None = Field(default=None, sa_column=sa.Column(PriceType))
    # naive's 80 % band at this step (migration 0007): the yardstick of the band's scores
    naive_lower: float | None = Field(default=None, sa_column=sa.Column(PriceType))
    naive_upper: float | None = Field(default=None, sa_column=sa.Column(PriceType))
    # the close's 5, 25, 50, 75 and 95 % quantiles (migration 0012); 10 and 90 % are lower, upper
    q05: float | None = Field(default=None, sa_column=sa.Column(PriceType))
    q25: float | None = Field(default=None, sa_column=sa.Column(PriceType))
    q50: float | None = Field(default=None, sa_column=sa.Column(PriceType))
    q75: float | None = Field(default=None, sa_column=sa.Column(PriceType))
    q95: float | None = Field(default=None, sa_column=sa.Column(PriceType))
    confidence: Decimal | None = Field(default=None, sa_column=sa.Column(sa.Numeric(5, 4)))
    direction: str | None = Field(default=None, sa_column=sa.Column(sa.String(10)))
    actual_close: float | None = Field(default=None, sa_column=sa.Column(PriceType))
    is_accurate: bool | None = Field(default=None, sa_column=sa.Column(sa.Boolean))


class ModelAccuracy(SQLModel, table=True):
    """How a model's served forecasts fared, per horizon (step number) and UTC day (the day the
    steps' candles closed). Not in the document's schema, which names the table only; figures are
    on the close's log return from the forecast's origin, naive's on the same steps beside them."""

    __tablename__ = "model_accuracy"
    __table_args__ = (
        sa.CheckConstraint(TIMEFRAME_CHECK, name="ck_model_accuracy_timeframe"),
        sa.UniqueConstraint("model_id", "timeframe", "horizon", "date", name="uq_model_accuracy_key"),
        sa.Index("idx_model_accuracy_timeframe_date", "timeframe", "date"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    model_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    )
    timeframe: str = Field(sa_column=sa.Column(sa.String(10), nullable=False))
    horizon: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    date: date_type = Field(sa_column=sa.Column(sa.Date, nullable=False))
    n: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    mae: float = Field(sa_column=sa.Column(sa.Double, nullable=False))
    naive_mae: float = Field(sa_column=sa.Column(sa.Double, nullable=False))
    directional_accuracy: float = Field(sa_column=sa.Column(sa.Double, nullable=False))
    coverage_80: float = Field(sa_column=sa.Column(sa.Double, nullable=False))
    mean_confidence: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    # the band's proper scores (migration 0008), log-return units; null where not scored
    interval_score: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    naive_interval_score: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    pinball_10: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    pinball_90: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    # the whole distribution's (migration 0012): mean CRPS and the share of outcomes in each tenth of the PIT
    crps: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    pit_bin_0: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    pit_bin_1: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    pit_bin_2: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    pit_bin_3: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    pit_bin_4: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    pit_bin_5: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    pit_bin_6: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    pit_bin_7: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    pit_bin_8: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    pit_bin_9: float | None = Field(default=None, sa_column=sa.Column(sa.Double))
    updated_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))


# -- Phase II: identity ------------------------------------------------------------------------


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint(TIER_CHECK, name="ck_users_tier"),
        sa.Index("idx_users_email", "email"),
        sa.Index("idx_users_tier", "tier"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(sa_column=sa.Column(sa.String(255), unique=True, nullable=False))
    email_verified: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime))
    name: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    image: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    password_hash: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    tier: str | None = Field(default="free", sa_column=sa.Column(sa.String(20), server_default="free"))
    created_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))
    updated_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))


class UserSession(SQLModel, table=True):
    """A signed-in session. `session_token` holds the SHA-256 of the token, never the token."""

    __tablename__ = "sessions"
    __table_args__ = (
        sa.Index("idx_sessions_user_id", "user_id"),
        sa.Index("idx_sessions_token", "session_token"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    session_token: str = Field(sa_column=sa.Column(sa.String(255), unique=True, nullable=False))
    expires: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))
    # Not in the document: what the user's list of sessions shows (migration 0009). `client` is
    # the address truncated to its network (IPv4 /24, IPv6 /48), never the full address.
    last_used_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime))
    client: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    user_agent: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))


TOKEN_PURPOSE_CHECK = "purpose IN ('verify_email', 'reset_password', 'already_registered')"
EMAIL_STATUS_CHECK = "email_status IN ('pending', 'sent', 'failed', 'not_sent')"


class AccountToken(SQLModel, table=True):
    """A single-use token mailed to a user (not in the document): an email verification or a
    password reset. Only the SHA-256 of the token is kept; the row's id is the send's
    idempotency key, so one request is one email even when the send is retried."""

    __tablename__ = "account_tokens"
    __table_args__ = (
        sa.CheckConstraint(TOKEN_PURPOSE_CHECK, name="ck_account_tokens_purpose"),
        sa.CheckConstraint(EMAIL_STATUS_CHECK, name="ck_account_tokens_email_status"),
        sa.Index("idx_account_tokens_user_purpose", "user_id", "purpose", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    purpose: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), unique=True, nullable=False))
    expires_at: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime))
    email_status: str = Field(default="pending", sa_column=sa.Column(sa.String(20), nullable=False,
                                                                      server_default="pending"))
    provider_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    created_at: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))


class AuthRequest(SQLModel, table=True):
    """A request that is rate-limited by client address whoever it names (not in the document):
    "forgot password" must answer alike for known and unknown emails, so its limit cannot hang
    on an account."""

    __tablename__ = "auth_requests"
    __table_args__ = (sa.Index("idx_auth_requests_kind_client", "kind", "client", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    client: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))


# -- Phase II: watchlists, alerts, trading plans ---------------------------------------------------
# Target, entry and stop prices are NUMERIC(20, 8) in the document; like the forecast prices they
# are stored as double precision here, so that a coin at 1e-5 keeps its significant digits.
CONDITION_CHECK = "condition_type IN ('above', 'below', 'crossing')"
PLAN_STATUS_CHECK = "status IN ('active', 'closed', 'paused')"


class Watchlist(SQLModel, table=True):
    __tablename__ = "watchlists"
    __table_args__ = (sa.Index("idx_watchlists_user_id", "user_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    is_default: bool | None = Field(default=False, sa_column=sa.Column(sa.Boolean, server_default=sa.false()))
    created_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))
    updated_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))


class WatchlistItem(SQLModel, table=True):
    __tablename__ = "watchlist_items"
    __table_args__ = (
        sa.UniqueConstraint("watchlist_id", "symbol_id", name="uq_watchlist_items_watchlist_symbol"),
        sa.Index("idx_watchlist_items_watchlist_id", "watchlist_id"),
        sa.Index("idx_watchlist_items_symbol_id", "symbol_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    watchlist_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("watchlists.id", ondelete="CASCADE"), nullable=False)
    )
    symbol_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("symbols.id", ondelete="CASCADE"), nullable=False)
    )
    position: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    added_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))


class Alert(SQLModel, table=True):
    __tablename__ = "alerts"
    __table_args__ = (
        sa.CheckConstraint(CONDITION_CHECK, name="ck_alerts_condition_type"),
        sa.Index("idx_alerts_user_id", "user_id"),
        sa.Index("idx_alerts_symbol_id", "symbol_id"),
        sa.Index("idx_alerts_active", "is_active"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    symbol_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("symbols.id", ondelete="CASCADE"), nullable=False)
    )
    condition_type: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    target_price: float = Field(sa_column=sa.Column(PriceType, nullable=False))
    is_active: bool | None = Field(default=True, sa_column=sa.Column(sa.Boolean, server_default=sa.true()))
    expires_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime))
    triggered_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime))
    notified_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime))
    created_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))


class AlertLog(SQLModel, table=True):
    """One trigger of an alert and what became of its notification (not in the document's schema)."""

    __tablename__ = "alert_logs"
    __table_args__ = (
        sa.UniqueConstraint("alert_id", "triggered_at", name="uq_alert_logs_alert_triggered"),
        sa.Index("idx_alert_logs_alert_id", "alert_id"),
        sa.Index("idx_alert_logs_pending", "status"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    alert_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False)
    )
    triggered_at: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))
    price: float = Field(sa_column=sa.Column(PriceType, nullable=False))
    previous_price: float | None = Field(default=None, sa_column=sa.Column(PriceType))
    channel: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))  # pending | sent | failed | not_sent
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    detail: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    provider_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    notified_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime))
    created_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))


class TradingPlan(SQLModel, table=True):
    __tablename__ = "trading_plans"
    __table_args__ = (
        sa.CheckConstraint(PLAN_STATUS_CHECK, name="ck_trading_plans_status"),
        sa.Index("idx_trading_plans_user_id", "user_id"),
        sa.Index("idx_trading_plans_symbol_id", "symbol_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    symbol_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("symbols.id", ondelete="CASCADE"), nullable=False)
    )
    title: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    entry_price: float | None = Field(default=None, sa_column=sa.Column(PriceType))
    target_price: float | None = Field(default=None, sa_column=sa.Column(PriceType))
    stop_loss: float | None = Field(default=None, sa_column=sa.Column(PriceType))
    # the forecast whose chances the plan answers (migration 0012)
    timeframe: str = Field(default="1d", sa_column=sa.Column(sa.String(10), nullable=False, server_default="1d"))
    risk_reward: Decimal | None = Field(default=None, sa_column=sa.Column(sa.Numeric(5, 2)))
    status: str | None = Field(default="active", sa_column=sa.Column(sa.String(20), server_default="active"))
    notes: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))
    updated_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))
    closed_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime))


# -- Phase III: usage ----------------------------------------------------------------------------


class UsageTracking(SQLModel, table=True):
    """A user's counted forecast calls of one UTC day, and the limit that applied."""

    __tablename__ = "usage_tracking"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "date", name="uq_usage_tracking_user_date"),
        sa.Index("idx_usage_tracking_user_id", "user_id"),
        sa.Index("idx_usage_tracking_date", "date"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    date: date_type = Field(sa_column=sa.Column(sa.Date, nullable=False))
    api_calls: int | None = Field(default=0, sa_column=sa.Column(sa.Integer, server_default="0"))
    limit: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))


class Subscription(SQLModel, table=True):
    """A user's Stripe customer and subscription, as the document defines it; `tier` and
    `status` follow the subscription webhooks."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        sa.CheckConstraint(TIER_CHECK, name="ck_subscriptions_tier"),
        sa.Index("idx_subscriptions_user_id", "user_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    stripe_customer_id: str = Field(sa_column=sa.Column(sa.String(255), unique=True, nullable=False))
    stripe_subscription_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(255), unique=True))
    tier: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    current_period_start: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime))
    current_period_end: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime))
    cancel_at_period_end: bool | None = Field(
        default=False, sa_column=sa.Column(sa.Boolean, server_default=sa.false())
    )
    created_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))
    updated_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))


class StripeEvent(SQLModel, table=True):
    """A Stripe webhook event we have handled (not in the document): its id makes each delivery
    count once, and its creation time per customer orders late deliveries."""

    __tablename__ = "stripe_events"
    __table_args__ = (sa.Index("idx_stripe_events_customer_created", "customer_id", "created"),)

    id: str = Field(sa_column=sa.Column(sa.String(255), primary_key=True))
    type: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    customer_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    created: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))
    outcome: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    processed_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now())
    )


class AnonymousUsage(SQLModel, table=True):
    """Counted forecast calls of one anonymous client address and UTC day (not in the document:
    `usage_tracking.user_id` is NOT NULL, and anonymous quotas must hold across replicas).
    `client_hash` is the SHA-256 of the address, so no address is kept in the clear."""

    __tablename__ = "anonymous_usage"
    __table_args__ = (
        sa.UniqueConstraint("client_hash", "date", name="uq_anonymous_usage_client_date"),
        sa.Index("idx_anonymous_usage_date", "date"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    client_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    date: date_type = Field(sa_column=sa.Column(sa.Date, nullable=False))
    api_calls: int | None = Field(default=0, sa_column=sa.Column(sa.Integer, server_default="0"))
    limit: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime, server_default=sa.func.now()))


class LedgerEntry(SQLModel, table=True):
    """One entry of the public track record (not in the document): a forecast served anonymously,
    entered in the transaction that stores it. `hash` is the SHA-256 of the forecast's canonical
    JSON followed by `prev_hash`, the previous entry's hash (`predictions.ledger`), so that a
    changed, removed or reordered earlier forecast breaks every later hash. Append-only: migration
    0006 installs triggers that refuse UPDATE and DELETE."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        sa.UniqueConstraint("prediction_id", name="uq_ledger_entries_prediction_id"),
        sa.UniqueConstraint("hash", name="uq_ledger_entries_hash"),
        sa.Index("idx_ledger_entries_made_at", "made_at"),
    )

    seq: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    prediction_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("predictions.id", ondelete="RESTRICT"), nullable=False)
    )
    made_at: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))
    prev_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))


class LedgerTreeNode(SQLModel, table=True):
    """A complete subtree of the public log's Merkle tree (RFC 9162; migration 0010): the subtree
    over leaves [idx * 2**level, (idx + 1) * 2**level). Level 0 holds the leaf hashes. Written with
    the entry that completes it, so that a proof or tile reads O(log n) rows, never the log."""

    __tablename__ = "ledger_tree"

    level: int = Field(sa_column=sa.Column(sa.SmallInteger, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=sa.Column(sa.LargeBinary(32), nullable=False))


class LedgerLeaf(SQLModel, table=True):
    """Leaf `idx` of the public log (entry seq = idx + 1): the canonical JSON it commits to, kept as
    written, so that an audit hashes text instead of rebuilding it from the forecast's rows."""

    __tablename__ = "ledger_leaves"

    idx: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))


class LedgerCheckpoint(SQLModel, table=True):
    """A signed checkpoint of the log (C2SP tlog-checkpoint): its size, root and signed note."""

    __tablename__ = "ledger_checkpoints"

    tree_size: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    root: bytes = Field(sa_column=sa.Column(sa.LargeBinary(32), nullable=False))
    made_at: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))
    note: str = Field(sa_column=sa.Column(sa.Text, nullable=False))


class LedgerCosignature(SQLModel, table=True):
    """A witness's cosignature of one checkpoint (C2SP tlog-cosignature): its signature line."""

    __tablename__ = "ledger_cosignatures"

    tree_size: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("ledger_checkpoints.tree_size"),
                                               primary_key=True, autoincrement=False))
    witness: str = Field(sa_column=sa.Column(sa.String(255), primary_key=True))
    line: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    received_at: datetime = Field(sa_column=sa.Column(sa.DateTime, nullable=False))
