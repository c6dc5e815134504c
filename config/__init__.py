"""The one place where configuration is read from the environment (pydantic-settings).

Every setting of README.md's configuration table is optional; the defaults are the embedded ones
(SQLite, in-process cache, synthetic market) so that a fresh checkout runs with nothing else
installed. Each group of settings is a frozen `BaseSettings` with its variables' prefix, bounds
as `Field` constraints and keys as `SecretStr`; `load_settings` reads a given mapping (the
process environment by default) through pydantic-settings' environment source, derives what
follows from other settings (the ports from SERVE_PORT, the public URL, the log's origin) and
turns the first invalid value into a `ConfigError` that names the variable: a typo in production
must never silently fall back to a default. `VARIABLES` and the README's table (checked by
tests/test_config.py) come from the fields.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from clock import as_utc


class ConfigError(ValueError):
    """A configuration variable holds a value the program cannot use."""


TIERS: tuple[str, ...] = ("free", "premium", "pro")
ANONYMOUS = "anonymous"
# SERVE_PORT + these, unless a port's own variable names it: two instances never collide
PORT_OFFSETS: dict[str, int] = {"metrics": 1101, "stats": 404, "fallback": 500}
# the API replicas' servers take REPLICA_PORT_SPAN ports on each node from REPLICA_PORT_BASE +
# (SERVE_PORT mod 100) x REPLICA_PORT_SPAN: 30000-30099 for 8000, always below 40000 (an offset
# would run past 65535 for a high SERVE_PORT); Ray skips a port it finds taken
REPLICA_PORT_BASE, REPLICA_PORT_SPAN = 30000, 100


def mask_url(value: str) -> str:
    """A URL fit for messages and logs: any password replaced by ***."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", value)


def secret(value: SecretStr | None) -> str | None:
    """The text of a key, None where it is unset."""
    return None if value is None else value.get_secret_value()


class _Group(BaseSettings):
    """A group of settings read from the variables `<env_prefix><FIELD>` (or a field's alias):
    only from what `load_settings` hands it, never from the process environment behind its back."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False, env_ignore_empty=True,
                                      populate_by_name=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    @classmethod
    def read(cls, env: Mapping[str, str], **derived: Any) -> Any:
        """The group from `env`, with `derived` values (from other groups) where env sets none."""
        found = _MappingSource(cls, env)()
        try:
            return cls(**{**derived, **found})
        except ValidationError as exc:
            raise _config_error(cls, exc, env) from None

    @classmethod
    def variables(cls) -> list[str]:
        """Every variable the group reads."""
        return [name for field in cls.model_fields if field not in getattr(cls, "DERIVED", ())
                for name in _names(cls, field)]


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {(k if self.case_sensitive else k.lower()): v for k, v in self._env.items()
                if not (self.env_ignore_empty and v == "")}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in getattr(self.settings_cls, "DERIVED", ()):  # set by load_settings, never read
            return None, field_name, False
        return super().get_field_value(field, field_name)


def _names(cls: type[_Group], field: str) -> list[str]:
    """The variables of a field (its aliases, else the prefix and its name)."""
    alias = cls.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(a).upper() for a in alias.choices]
    return [str(cls.model_config.get("env_prefix", "")).upper() + field.upper()]


def _config_error(cls: type[_Group], exc: ValidationError, env: Mapping[str, str]) -> ConfigError:
    """The first error as one line: VARIABLE='value' and what it expects."""
    error = exc.errors()[0]
    loc = str(error["loc"][0]).upper() if error["loc"] else ""
    field = next((f for f in cls.model_fields if loc == f.upper() or loc in _names(cls, f)), None)
    names = _names(cls, field) if field is not None else [loc]
    name = next((n for n in names if env.get(n)), names[0])
    value = env.get(name, error.get("input"))
    shown = mask_url(str(value)) if isinstance(value, str) else value
    message = str(error["msg"]).removeprefix("Value error, ")
    if str(error["msg"]).startswith("Value error, "):
        return ConfigError(message)
    return ConfigError(f"{name}={shown!r} is not valid: {message}")


class MarketSource(BaseModel):
    """The parsed `MARKET_SOURCE`: its kind and, for `csv`, the directory it reads."""

    model_config = ConfigDict(frozen=True)
    kind: str  # "synthetic" | "massive" | "csv"
    csv_dir: Path | None = None

    @classmethod
    def parse(cls, value: str) -> MarketSource:
        expect = "expected 'synthetic', 'massive' or 'csv:<dir>'"
        if value in ("synthetic", "massive"):
            return cls(kind=value)
        if value.startswith("csv:"):
            if not value[len("csv:"):]:
                raise ValueError(f"MARKET_SOURCE={value!r} names no directory; {expect}")
            return cls(kind="csv", csv_dir=Path(value[len("csv:"):]))
        raise ValueError(f"MARKET_SOURCE={value!r} is unknown; {expect}")


def database_url(value: str, name: str = "DATABASE_URL") -> str:
    """`value` checked as a SQLite or PostgreSQL URL; a bare postgresql:// takes psycopg 3."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    expect = "expected sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"
    shown = mask_url(value)
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(f"{name}={shown!r} is not a database URL; {expect}") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"{name}={shown!r} names backend {url.get_backend_name()!r}; {expect}")
    if url.get_backend_name() == "postgresql" and url.get_driver_name() not in ("psycopg", "psycopg2") \
            and "+" in url.drivername:
        raise ValueError(f"{name}={shown!r} names driver {url.get_driver_name()!r}; {expect}")
    if url.get_backend_name() == "postgresql" and "+" not in url.drivername:
        value = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return value


def _http_url(name: str, value: str | None, example: str) -> str | None:
    if value is None:
        return None
    value = value.rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{name}={value!r} is not an http(s) URL; expected e.g. {example}")
    return value


class ServePorts(_Group):
    """Every port `python -m serve_app` opens besides SERVE_PORT (the defaults: SERVE_PORT 8000);
    each unset one follows SERVE_PORT (`load_settings`)."""

    metrics: int = Field(9101, ge=1, le=65535, validation_alias=AliasChoices("SERVE_METRICS_PORT"))
    stats: int = Field(8404, ge=1, le=65535, validation_alias=AliasChoices("SERVE_STATS_PORT"))
    fallback: int = Field(8500, ge=1, le=65535, validation_alias=AliasChoices("SERVE_FALLBACK_PORT"))
    replicas_from: int = Field(30000, ge=1, le=65535, validation_alias=AliasChoices("SERVE_REPLICA_PORT_MIN"))

    @property
    def replicas_to(self) -> int:
        return self.replicas_from + REPLICA_PORT_SPAN - 1


class LiveSettings(_Group):
    """The live candles' WebSocket: Massive's socket host, sockets allowed per client address and
    per signed-in user, and the speed of a `csv:` replay under SERVE_AS_OF."""

    massive_ws_base: str = Field("wss://socket.massive.com", validation_alias=AliasChoices("MASSIVE_WS_BASE"))
    max_sockets: int = Field(20, ge=1, le=10**5, validation_alias=AliasChoices("LIVE_MAX_SOCKETS"))
    # market seconds replayed per real second
    replay_speed: float = Field(60.0, ge=0.01, le=10**5, validation_alias=AliasChoices("LIVE_REPLAY_SPEED"))

    @field_validator("massive_ws_base")
    @classmethod
    def _ws(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith(("ws://", "wss://")) or value.endswith("://"):
            raise ValueError(f"MASSIVE_WS_BASE={value!r} is not a ws:// or wss:// address, e.g. wss://socket.massive.com")
        return value


class LedgerSettings(_Group):
    """The public transparency log: its origin line (and key name), its signing key, how often it
    signs a new checkpoint while entries arrive, and the witnesses whose cosignatures it serves."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_")
    origin: str = "127.0.0.1:8000/ledger"  # default: PUBLIC_BASE_URL's host + /ledger
    signing_key: SecretStr | None = None  # base64 Ed25519 seed; unset: generated in SERVE_STATE_DIR
    checkpoint_s: float = Field(10.0, ge=0, le=86400)
    witnesses: Annotated[tuple[str, ...], NoDecode] = ()  # witnesses' vkeys, comma-separated

    @field_validator("origin")
    @classmethod
    def _origin(cls, value: str) -> str:
        if "\n" in value or " " in value or "+" in value:
            raise ValueError(f"LEDGER_ORIGIN={value!r} must be one line without spaces or '+', "
                             "e.g. cryptocast.example/ledger")
        return value

    @field_validator("witnesses", mode="before")
    @classmethod
    def _witnesses(cls, value: Any) -> Any:
        return tuple(w.strip() for w in value.split(",") if w.strip()) if isinstance(value, str) else value


class Quotas(_Group):
    """Forecasts per UTC day, by tier; `anonymous` counts per client address."""

    model_config = SettingsConfigDict(env_prefix="QUOTA_")
    anonymous: int = Field(5, ge=0, le=10**9)
    free: int = Field(10, ge=0, le=10**9)
    premium: int = Field(100, ge=0, le=10**9)
    pro: int = Field(1000, ge=0, le=10**9)


class AccountSettings(_Group):
    """Identity and quota settings: session lifetime, cookies, daily quotas per tier."""

    DERIVED: ClassVar[tuple[str, ...]] = ("quotas", "public_base_url")  # set by load_settings
    quotas: Quotas = Quotas()
    session_ttl_days: int = Field(30, ge=1, le=3650, validation_alias=AliasChoices("SESSION_TTL_DAYS"))
    cookie_secure: bool = Field(False, validation_alias=AliasChoices("COOKIE_SECURE"))
    public_base_url: str = "http://127.0.0.1:8000"  # PUBLIC_BASE_URL: where emailed links point

    def quota(self, tier: str | None) -> int:
        """The daily forecast limit of a tier; `None` is an anonymous caller."""
        return int(getattr(self.quotas, tier or ANONYMOUS))


class TierLimits(BaseModel):
    """How many of their own objects a user of one tier may keep."""

    model_config = ConfigDict(frozen=True)
    watchlists: int
    watchlist_items: int  # per watchlist
    active_alerts: int
    plans: int


def _limit(default: int, name: str) -> Any:
    return Field(default, ge=0, le=10**6, validation_alias=AliasChoices(name))


class Limits(_Group):
    """LIMIT_WATCHLISTS_<TIER>, LIMIT_WATCHLIST_ITEMS_<TIER>, LIMIT_ALERTS_<TIER>, LIMIT_PLANS_<TIER>."""

    watchlists_free: int = _limit(3, "LIMIT_WATCHLISTS_FREE")
    watchlists_premium: int = _limit(10, "LIMIT_WATCHLISTS_PREMIUM")
    watchlists_pro: int = _limit(50, "LIMIT_WATCHLISTS_PRO")
    watchlist_items_free: int = _limit(20, "LIMIT_WATCHLIST_ITEMS_FREE")
    watchlist_items_premium: int = _limit(100, "LIMIT_WATCHLIST_ITEMS_PREMIUM")
    watchlist_items_pro: int = _limit(500, "LIMIT_WATCHLIST_ITEMS_PRO")
    alerts_free: int = _limit(5, "LIMIT_ALERTS_FREE")
    alerts_premium: int = _limit(50, "LIMIT_ALERTS_PREMIUM")
    alerts_pro: int = _limit(500, "LIMIT_ALERTS_PRO")
    plans_free: int = _limit(20, "LIMIT_PLANS_FREE")
    plans_premium: int = _limit(200, "LIMIT_PLANS_PREMIUM")
    plans_pro: int = _limit(2000, "LIMIT_PLANS_PRO")

    def of(self, tier: str) -> TierLimits:
        tier = tier if tier in TIERS else "free"
        return TierLimits(watchlists=getattr(self, f"watchlists_{tier}"),
                          watchlist_items=getattr(self, f"watchlist_items_{tier}"),
                          active_alerts=getattr(self, f"alerts_{tier}"), plans=getattr(self, f"plans_{tier}"))


class EmailSettings(_Group):
    """Emails through Resend; without a key they go to the log and, if set, the outbox folder."""

    api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("RESEND_API_KEY"))
    # None: Resend's own; tests name a loopback server
    api_base: str | None = Field(None, validation_alias=AliasChoices("RESEND_API_BASE"))
    sender: str = Field("cryptocast alerts <alerts@cryptocast.invalid>", validation_alias=AliasChoices("ALERT_FROM_EMAIL"))
    # where unsent emails are kept whole, without a key
    outbox_dir: str | None = Field("./var/outbox", validation_alias=AliasChoices("EMAIL_OUTBOX"))

    @field_validator("api_base")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        return _http_url("RESEND_API_BASE", value, "https://api.resend.com")


class BillingSettings(_Group):
    """Stripe; billing is off without an API key."""

    model_config = SettingsConfigDict(env_prefix="STRIPE_")
    DERIVED: ClassVar[tuple[str, ...]] = ("public_base_url",)
    api_key: SecretStr | None = None
    api_base: str | None = None  # None: Stripe's own; tests name a loopback server
    webhook_secret: SecretStr | None = None
    price_premium: str | None = None
    price_pro: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"  # where Checkout and the portal send the user back

    @field_validator("api_base")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        return _http_url("STRIPE_API_BASE", value, "https://api.stripe.com")

    @property
    def enabled(self) -> bool:
        return self.api_key is not None

    def price_of(self, tier: str) -> str | None:
        return {"premium": self.price_premium, "pro": self.price_pro}.get(tier)

    def tier_of_price(self, price_id: str | None) -> str | None:
        return {self.price_premium: "premium", self.price_pro: "pro"}.get(price_id) if price_id else None


class Settings(_Group):
    """Everything the programs read: where data lives, the services they use, and the groups."""

    DERIVED: ClassVar[tuple[str, ...]] = ("accounts", "billing", "limits", "email", "live", "ports", "ledger")
    data_dir: str = "./var/data"
    model_dir: str = "./var/models"
    database_url: str = "sqlite:///./var/app.db"
    # the owner role that migrates, where the service runs as a role that may not change what the
    # public log hashes (`storage.roles`); never handed to the replicas
    database_migration_url: str | None = None
    redis_url: str | None = None
    market_source: Annotated[MarketSource, NoDecode] = MarketSource(kind="synthetic")
    massive_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("MASSIVE_API_KEY", "POLYGON_API_KEY"))
    massive_api_base: str = "https://api.massive.com"
    massive_retries: int = Field(5, ge=0, le=20)
    massive_backoff_s: float = Field(0.5, ge=0, le=60)
    serve_host: str = "127.0.0.1"
    serve_port: int = Field(8000, ge=1, le=65535)
    public_base_url: str | None = None  # unset: http://SERVE_HOST:SERVE_PORT
    serve_as_of: datetime | None = None  # serve as of this past moment (demos, replays)
    # where `python -m serve_app` records its processes (pid files), so that the next start on the
    # same port ends what a crashed one left behind
    serve_state_dir: str = "./var/run"
    accounts: AccountSettings = AccountSettings()
    billing: BillingSettings = BillingSettings()
    limits: Limits = Limits()
    email: EmailSettings = EmailSettings()
    live: LiveSettings = LiveSettings()
    ports: ServePorts = ServePorts()
    ledger: LedgerSettings = LedgerSettings()

    @field_validator("market_source", mode="before")
    @classmethod
    def _market(cls, value: Any) -> Any:
        return MarketSource.parse(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _massive_needs_a_key(self) -> Settings:
        if self.market_source.kind == "massive" and self.massive_api_key is None:
            raise ValueError("MARKET_SOURCE=massive needs MASSIVE_API_KEY (or POLYGON_API_KEY): the API key of your "
                             "Massive (Polygon.io) account")
        return self

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        return database_url(value)

    @field_validator("database_migration_url")
    @classmethod
    def _migration(cls, value: str | None) -> str | None:
        return None if value is None else database_url(value, "DATABASE_MIGRATION_URL")

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        from urllib.parse import urlparse

        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("redis", "rediss", "unix") or (parsed.scheme != "unix" and not parsed.hostname):
            raise ValueError(f"REDIS_URL={mask_url(value)!r} is not a Redis URL; expected redis://HOST:PORT/DB")
        return value

    @field_validator("massive_api_base")
    @classmethod
    def _massive_base(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("public_base_url")
    @classmethod
    def _public(cls, value: str | None) -> str | None:
        return _http_url("PUBLIC_BASE_URL", value, "https://cryptocast.example")

    @field_validator("serve_as_of", mode="before")
    @classmethod
    def _moment(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            raise ValueError(f"SERVE_AS_OF={value!r} is not a date or ISO time; expected e.g. 2024-12-31 or "
                             "2024-12-31T12:00:00Z") from None


GROUPS: tuple[type[_Group], ...] = (Settings, AccountSettings, Quotas, BillingSettings, Limits, EmailSettings,
                                    LiveSettings, ServePorts, LedgerSettings)
# Every variable the settings read: what a process hands on to the replicas it deploys.
VARIABLES: tuple[str, ...] = tuple(dict.fromkeys(name for group in GROUPS for name in group.variables()))


def _ports(env: Mapping[str, str], serve_port: int) -> ServePorts:
    """The ports that follow SERVE_PORT unless named; one that would run past 65535 says which
    variable to set."""
    offsets = {"metrics": PORT_OFFSETS["metrics"], "stats": PORT_OFFSETS["stats"], "fallback": PORT_OFFSETS["fallback"],
               "replicas_from": REPLICA_PORT_BASE + serve_port % 100 * REPLICA_PORT_SPAN - serve_port}
    named = ServePorts.read(env)
    derived = {}
    for field, offset in offsets.items():
        name = _names(ServePorts, field)[0]
        span = REPLICA_PORT_SPAN if field == "replicas_from" else 1
        port = getattr(named, field) if env.get(name) else serve_port + offset
        if port + span - 1 > 65535:
            source = f"{name}={port}" if env.get(name) else f"SERVE_PORT={serve_port} + {offset}"
            raise ConfigError(f"{source} leaves no room for {span} port(s) below 65536; set {name}")
        derived[field] = port
    return ServePorts.model_validate(derived)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raises ConfigError naming the first bad variable."""
    env = os.environ if environ is None else environ
    core = Settings.read(env)
    public = core.public_base_url or f"http://{core.serve_host}:{core.serve_port}"
    # a service public on https sends its session cookie only over https unless told otherwise
    account_env = {**env, "COOKIE_SECURE": "1"} if public.startswith("https://") and "COOKIE_SECURE" not in env else env
    return core.model_copy(update={
        "accounts": AccountSettings.read(account_env, quotas=Quotas.read(env), public_base_url=public),
        "billing": BillingSettings.read(env, public_base_url=public),
        "limits": Limits.read(env),
        "email": EmailSettings.read(env),
        "live": LiveSettings.read(env),
        "ports": _ports(env, core.serve_port),
        "ledger": LedgerSettings.read(env, origin=public.split("://", 1)[1] + "/ledger"),
    })


def environ_snapshot(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's configuration variables, for replicas that must use the same settings
    (relative paths made absolute: a replica's working directory is not ours)."""
    env = os.environ if environ is None else environ
    snapshot = {k: env[k] for k in VARIABLES if env.get(k)}
    for key, default in (("DATA_DIR", Settings.model_fields["data_dir"].default),
                         ("MODEL_DIR", Settings.model_fields["model_dir"].default),
                         ("SERVE_STATE_DIR", Settings.model_fields["serve_state_dir"].default)):
        value = snapshot.get(key, default)
        if "://" not in value:
            snapshot[key] = str(Path(value).resolve())
    url = snapshot.get("DATABASE_URL", Settings.model_fields["database_url"].default)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        snapshot["DATABASE_URL"] = "sqlite:///" + str(Path(url[len("sqlite:///"):]).resolve())
    return snapshot


def settings_or_exit() -> Settings:
    """Entry points call this: a bad variable ends the program with one readable line."""
    try:
        return load_settings()
    except ConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
