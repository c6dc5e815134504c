"""Typed requests and responses of the HTTP API (their names are the API's contract, README.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, model_validator

from market_data.timeframes import TIMEFRAMES
from predictions.service import MAX_STEPS

Timeframe = Literal["1h", "4h", "1d", "1w", "1m"]  # written out for the OpenAPI document; the same as:
assert get_args(Timeframe) == TIMEFRAMES
# letters, digits and the separators tickers use; no spaces or control characters (a NUL byte
# is refused before it reaches the database)
TICKER_PATTERN = r"^[A-Za-z0-9:._/-]+$"
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"  # printable, with tabs and line breaks (notes)
# what a price may be: every listed coin's lies far inside, and risk/reward stays a finite number
MIN_PRICE, MAX_PRICE = 1e-12, 1e12


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(min_length=1, max_length=20, pattern=TICKER_PATTERN, description='ticker, e.g. "X:BTCUSD"')
    timeframe: Timeframe
    predict_until: datetime | None = Field(default=None, description="forecast up to this time (at most 30 steps)")
    num_steps: int | None = Field(default=None, ge=1, le=MAX_STEPS, description="default 30")


class Step(BaseModel):
    step: int
    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    lower: float = Field(description="lower end of the 80 % band of close")
    upper: float = Field(description="upper end of the 80 % band of close")
    confidence: float = Field(description="calibrated probability that `direction` is right; 0.5 when flat")
    direction: Literal["up", "down", "flat"] = Field(
        description="the sign of close against the last closed candle's close; `flat` where the model proved "
                    "no edge at this step on held-out data (close = last close, confidence 0.5)")
    quantiles: dict[str, float] | None = Field(
        default=None, description='the close\'s predictive distribution: its quantiles at "0.05", "0.1", "0.25", '
                                  '"0.5", "0.75", "0.9" and "0.95" ("0.1" and "0.9" are the band); null for a '
                                  "forecast made before forecasts carried one")


class PredictionResponse(BaseModel):
    prediction_id: str
    symbol: str
    timeframe: Timeframe
    model_version: str
    created_at: datetime
    cached: bool
    stale: bool = False
    direction: Literal["up", "down", "flat"] = Field(description="the last step's direction")
    confidence_avg: float
    key_indicators: list[str]
    steps: list[Step]
    ledger: LedgerRef | None = Field(default=None, description="where this forecast is in the public log (a user's "
                                     "copy: its anonymous original's); null for a forecast the log does not hold")
    replay: bool = Field(default=False, description="made by a service replaying the past (SERVE_AS_OF): "
                                                    "never entered in the public log")


class ProbabilityQuestion(BaseModel):
    """`above` with `step`, or `touch` with `within` (the query string of the probability endpoint)."""

    model_config = ConfigDict(extra="forbid")

    above: float | None = Field(default=None, gt=0, description="a price: the chance that the close of `step` "
                                "is above it")
    step: int | None = Field(default=None, ge=1, le=MAX_STEPS)
    touch: float | None = Field(default=None, gt=0, description="a price: the chance that the price reaches it "
                                "within `within` steps")
    within: int | None = Field(default=None, ge=1, le=MAX_STEPS)


class ProbabilityResponse(BaseModel):
    prediction_id: str
    above: float | None = Field(default=None, description="the price asked about with `step`")
    step: int | None = None
    p_above: float | None = Field(default=None, description="the chance that the close of `step` is above `above`")
    touch: float | None = Field(default=None, description="the price asked about with `within`")
    within: int | None = None
    p_touch: float | None = Field(default=None, description="the chance that the price reaches `touch` at any "
                                  "moment of the first `within` steps (as the candles' highs and lows would show)")


class LedgerRef(BaseModel):
    index: int = Field(description="the forecast's leaf in the log (its ledger seq - 1)")
    leaf_hash: str = Field(description="SHA-256(0x00 || canonical JSON), base64: what an inclusion proof starts from")


class SymbolOut(BaseModel):
    ticker: str
    name: str
    base_currency: str | None
    quote_currency: str | None
    volume_rank: int | None


class SearchResponse(BaseModel):
    query: str
    results: list[SymbolOut]


class ModelOut(BaseModel):
    id: str
    timeframe: Timeframe
    version: str
    is_active: bool
    trained_at: datetime
    training_start: datetime
    training_end: datetime
    num_symbols: int
    feature_count: int | None
    accuracy_avg: float | None


class ModelsResponse(BaseModel):
    models: list[ModelOut]


class LiveHealth(BaseModel):
    state: str  # the upstream market stream: connecting | connected | reconnecting
    viewers: int  # live sockets open on the replica that answered
    upstream_subscriptions: int  # symbols subscribed from the market stream (cluster-wide under Serve)


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    cache: str
    models: dict[str, str | None]
    live: LiveHealth | None = None  # none where the market has no live stream


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
    last_prediction: PredictionResponse | None = None


# -- accounts ------------------------------------------------------------------------------------
Tier = Literal["free", "premium", "pro"]


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=255)
    password: str = Field(description="8 to 128 characters", max_length=10_000)
    name: str | None = Field(default=None, max_length=255)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=1, max_length=320, pattern=PRINTABLE_PATTERN)  # no NUL reaches the database
    password: str = Field(min_length=1, max_length=10_000)


class UserOut(BaseModel):
    id: str
    email: str
    name: str | None
    tier: Tier
    created_at: datetime
    email_verified: bool = Field(description="false until the link emailed on registration is followed; until "
                                             "then no paid tier can be bought and no alert email is sent")


TOKEN_PATTERN = r"^[A-Za-z0-9_-]+$"  # what an emailed link carries after `#verify=` or `#reset=`


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=100, pattern=TOKEN_PATTERN)


class ForgotRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=1, max_length=320, pattern=PRINTABLE_PATTERN)


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=100, pattern=TOKEN_PATTERN)
    password: str = Field(description="the new password, 8 to 128 characters", max_length=10_000)


class ChangePasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current: str = Field(min_length=1, max_length=10_000)
    new: str = Field(description="8 to 128 characters", max_length=10_000)


class PasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=10_000, description="the current password, to confirm")


class MessageResponse(BaseModel):
    message: str


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime
    client: str | None = Field(description="the client's network (IPv4 /24, IPv6 /48), never its full address")
    user_agent: str | None
    current: bool = Field(description="the session this request came with")


class SessionsResponse(BaseModel):
    sessions: list[SessionOut]


class LoginResponse(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>`; also set as the `session` cookie")
    expires_at: datetime
    user: UserOut


class UsageOut(BaseModel):
    date: str = Field(description="the UTC day counted")
    api_calls: int
    limit: int
    remaining: int
    reset_at: datetime


class MeResponse(BaseModel):
    user: UserOut
    tier: Tier
    usage: UsageOut


# -- billing -------------------------------------------------------------------------------------
class CheckoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier: Literal["premium", "pro"] = Field(description="the paid tier to subscribe to")


class UrlResponse(BaseModel):
    url: str = Field(description="send the user's browser here (Stripe's hosted page)")


class WebhookResponse(BaseModel):
    received: bool
    event_id: str
    outcome: Literal["applied", "stale", "ignored", "duplicate"]


# -- accuracy ------------------------------------------------------------------------------------
class HorizonAccuracy(BaseModel):
    horizon: int = Field(description="step number (1 = the candle open when the forecast was made)")
    n: int
    mae: float = Field(description="mean absolute error of the close's log return from the forecast's origin")
    naive_mae: float = Field(description="the same for naive (the origin's close carried forward), same steps")
    mae_ratio: float | None = Field(description="mae / naive_mae: below 1 beats naive")
    directional_accuracy: float = Field(description="share of steps whose direction was right (the hit rate)")
    coverage_80: float = Field(description="share of actual closes inside the 80 % band")
    mean_confidence: float | None = Field(description="mean stated confidence, to compare with the hit rate")
    interval_score: float | None = Field(default=None, description="mean interval score of the served 80 % band "
                                                                   "(log-return units; lower is better)")
    naive_interval_score: float | None = Field(default=None, description="the same for naive's band on the same steps")
    interval_score_ratio: float | None = Field(default=None, description="interval_score / naive_interval_score: "
                                                                         "below 1 the band beats naive's")
    pinball_10: float | None = Field(default=None, description="pinball loss of the band's lower end (10 % quantile)")
    pinball_90: float | None = Field(default=None, description="pinball loss of the band's upper end (90 % quantile)")
    crps: float | None = Field(default=None, description="mean CRPS of the served distribution (its quantiles; "
                               "log-return units; lower is better); null for steps stored without one")
    pit_histogram: list[float] | None = Field(default=None, description="the share of outcomes in each tenth of "
                                              "the distribution (0.1 each where it is calibrated)")


class ReliabilityBin(BaseModel):
    """A bin of about equal count: the range of confidence it holds, how many steps, their mean
    confidence and the share that came true, with its 95 % block-bootstrap interval."""

    low: float
    high: float
    n: int
    mean_confidence: float
    hit_rate: float
    hit_rate_low: float | None = None
    hit_rate_high: float | None = None


class AccuracyResponse(BaseModel):
    timeframe: Timeframe
    model_version: str
    model_id: str
    days: int
    since: datetime
    overall: HorizonAccuracy | None = Field(description="pooled over horizons (horizon 0); null before any score")
    horizons: list[HorizonAccuracy]
    reliability: list[ReliabilityBin]


# -- candles -------------------------------------------------------------------------------------
class Candle(BaseModel):
    timestamp: datetime = Field(description="open time (UTC)")
    open: float
    high: float
    low: float
    close: float
    volume: float


class CandlesResponse(BaseModel):
    symbol: str
    timeframe: Timeframe
    candles: list[Candle] = Field(description="closed candles, oldest first")


# -- watchlists, alerts, trading plans -------------------------------------------------------------
Price = Annotated[float, Field(gt=0, ge=MIN_PRICE, le=MAX_PRICE, allow_inf_nan=False, strict=True,
                               description="a positive price, from 1e-12 to 1e12")]
Ticker = Annotated[str, Field(min_length=1, max_length=20, pattern=TICKER_PATTERN, description='e.g. "X:BTCUSD"')]


class WatchlistCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=PRINTABLE_PATTERN)
    is_default: bool | None = None


class WatchlistUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100, pattern=PRINTABLE_PATTERN)
    is_default: bool | None = None


class WatchlistItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: Ticker
    position: int | None = Field(default=None, ge=0, le=100_000)


class ItemPosition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(max_length=36)
    position: int = Field(ge=0, le=100_000)


class ReorderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    positions: list[ItemPosition] = Field(min_length=1, max_length=1000)


class WatchlistItemOut(BaseModel):
    id: str
    symbol: str
    name: str
    position: int
    added_at: datetime | None


class WatchlistOut(BaseModel):
    id: str
    name: str
    is_default: bool
    created_at: datetime | None
    updated_at: datetime | None
    items: list[WatchlistItemOut]


class WatchlistsResponse(BaseModel):
    watchlists: list[WatchlistOut]


class AlertCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: Ticker
    condition_type: Literal["above", "below", "crossing"]
    target_price: Price
    expires_at: datetime | None = Field(default=None, description="after this the alert no longer triggers")


class AlertUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    condition_type: Literal["above", "below", "crossing"] | None = None
    target_price: Price | None = None
    expires_at: datetime | None = None
    is_active: bool | None = None


class AlertOut(BaseModel):
    id: str
    symbol: str | None
    condition_type: Literal["above", "below", "crossing"]
    target_price: float
    is_active: bool
    expires_at: datetime | None
    triggered_at: datetime | None
    notified_at: datetime | None
    created_at: datetime | None
    email_notice: str | None = Field(default=None, description="why no email will be sent when it triggers")
    p_trigger: float | None = Field(default=None, description="the chance that the condition holds within the 1d "
                                    "forecast's steps (null: no 1d forecast of the coin within its last day)")
    forecast_id: str | None = Field(default=None, description="the forecast the chance is read from")


class AlertsResponse(BaseModel):
    alerts: list[AlertOut]
    email_notice: str | None = Field(default=None, description="why no alert email is sent to this account")


class AlertLogOut(BaseModel):
    id: str
    triggered_at: datetime
    price: float
    previous_price: float | None
    channel: str
    status: str
    attempts: int
    detail: str | None
    notified_at: datetime | None


class AlertLogsResponse(BaseModel):
    logs: list[AlertLogOut]


def _not_blank(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be blank")
    return value


PlanTitle = Annotated[str, Field(min_length=1, max_length=255, pattern=PRINTABLE_PATTERN), AfterValidator(_not_blank)]
PlanNotes = Annotated[str, Field(max_length=5000, pattern=TEXT_PATTERN)]
PlanStatus = Literal["active", "paused", "closed"]


class PlanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: Ticker
    title: PlanTitle
    entry_price: Price | None = None
    target_price: Price | None = None
    stop_loss: Price | None = None
    status: PlanStatus | None = None
    notes: PlanNotes | None = None
    timeframe: Timeframe = Field(default="1d", description="the forecast whose chances the plan answers")


class PlanUpdate(BaseModel):
    """Only the fields given change; a price or the notes may be cleared with null, the title and
    status may not (the plan always has them)."""

    model_config = ConfigDict(extra="forbid")

    title: PlanTitle | None = None
    entry_price: Price | None = None
    target_price: Price | None = None
    stop_loss: Price | None = None
    status: PlanStatus | None = None
    notes: PlanNotes | None = None
    timeframe: Timeframe | None = None

    @model_validator(mode="before")
    @classmethod
    def _kept_fields_not_null(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in ("title", "status", "timeframe"):
                if name in data and data[name] is None:
                    raise ValueError(f"{name} may be left out, not null: a plan always has one")
        return data


class PlanOut(BaseModel):
    id: str
    symbol: str | None
    title: str
    entry_price: float | None
    target_price: float | None
    stop_loss: float | None
    risk_reward: float | None = Field(description="reward / risk, computed by the server")
    side: Literal["long", "short"] | None
    status: str | None
    notes: str | None
    created_at: datetime | None
    updated_at: datetime | None
    closed_at: datetime | None
    timeframe: Timeframe
    p_target_first: float | None = Field(default=None, description="the chance that the price reaches the target "
                                         "before the stop within the forecast's steps (null: no target and stop, "
                                         "or no forecast of the coin within its last candle)")
    p_stop_first: float | None = Field(default=None, description="the chance that the stop comes first")
    p_neither: float | None = Field(default=None, description="the chance that neither is reached in the "
                                    "forecast's steps; the three sum to 1")
    target_band_widths: float | None = Field(default=None, description="how far the target is from the last close, "
                                             "in widths of the next candle's 80 % band")
    stop_band_widths: float | None = Field(default=None, description="the same for the stop")
    forecast_id: str | None = Field(default=None, description="the forecast these chances are read from")


class PlansResponse(BaseModel):
    trading_plans: list[PlanOut]


# -- track record --------------------------------------------------------------------------------
class LedgerHead(BaseModel):
    seq: int = Field(description="entries so far (0: none yet)")
    hash: str = Field(description="the last entry's hash; 64 zeros before the first")
    made_at: datetime | None = Field(description="when the last entered forecast was made")


class LedgerEntryOut(BaseModel):
    seq: int
    prediction_id: str
    made_at: datetime
    prev_hash: str = Field(description="the previous entry's hash (64 zeros for entry 1)")
    hash: str = Field(description="SHA-256 of `canonical_json` followed by `prev_hash`, as UTF-8 hex")
    canonical_json: str | None = Field(description="the forecast as it is stored now, in the form that was hashed; "
                                                   "null when the forecast is no longer stored")
    verifies: bool = Field(description="whether `canonical_json` + `prev_hash` hashes to `hash` now")


class Interval(BaseModel):
    value: float
    low: float = Field(description="95 % block-bootstrap interval, low end")
    high: float


class TrackHorizon(BaseModel):
    horizon: int
    n: int = Field(description="scored forecasts at this horizon")
    status: Literal["ok", "not enough data yet"]
    mae_ratio: Interval | None = Field(description="MAE of the close's log return over naive's: below 1 beats naive")
    dm_statistic: float | None = Field(description="Diebold-Mariano statistic against naive (negative: the model's "
                                                   "absolute errors are smaller)")
    dm_p_value: float | None
    directional_accuracy: float | None = Field(description="share of called directions that were right")
    called: int = Field(description="steps that called a direction (flat steps call none)")
    coverage_80: Interval | None = Field(description="share of actual closes inside the 80 % band")
    interval_score: float | None = Field(description="mean interval score of the served 80 % band, log-return units")
    interval_score_ratio: Interval | None = Field(description="the served band's interval score over naive's band's")
    crps: float | None = Field(default=None, description="mean CRPS of the served distribution, log-return units "
                               "(forecasts stored with quantiles only)")
    pit_histogram: list[float] | None = Field(default=None, description="the share of outcomes in each tenth of "
                                              "the served distribution (0.1 each where it is calibrated)")


class TrackVersion(BaseModel):
    model_version: str
    forecasts: int = Field(description="ledger entries of this version with at least one scored step")
    horizons: list[TrackHorizon]
    reliability: list[ReliabilityBin]


class TrackRecordResponse(BaseModel):
    timeframe: Timeframe
    days: int
    since: datetime
    min_n: int = Field(description="scored forecasts a horizon needs before its figures are shown")
    ledger_head: LedgerHead
    versions: list[TrackVersion]


# -- transparency log ----------------------------------------------------------------------------
class LedgerKey(BaseModel):
    name: str = Field(description="the key's name: the log's origin line")
    vkey: str = Field(description="<name>+<hex key id>+<base64(0x01 || Ed25519 public key)> (C2SP signed-note)")


class InclusionProof(BaseModel):
    index: int
    tree_size: int
    leaf_hash: str = Field(description="base64 SHA-256(0x00 || leaf)")
    hashes: list[str] = Field(description="RFC 9162 inclusion path, leaf side first, base64")


class ConsistencyProof(BaseModel):
    first: int
    second: int
    hashes: list[str] = Field(description="RFC 9162 consistency proof, base64")


class CosignaturesAdded(BaseModel):
    added: int = Field(description="cosignatures stored that the log did not have yet")
