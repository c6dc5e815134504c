"""The one place where configuration is read from the environment.

Every setting of README.md's configuration table is optional; the defaults are the embedded ones (SQLite,
in-process cache, synthetic market) so that a fresh checkout runs with nothing else installed.
A malformed value stops the program with one line that names the variable and what it expects,
because a typo in production must never silently fall back to a default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from clock import as_utc


class ConfigError(ValueError):
    """A configuration variable holds a value the program cannot use."""


@dataclass(frozen=True)
class MarketSource:
    """The parsed `MARKET_SOURCE`: its kind and, for `csv`, the directory it reads."""

    kind: str  # "synthetic" | "massive" | "csv"
    csv_dir: Path | None = None


@dataclass(frozen=True)
class LiveSettings:
    """The live candles' WebSocket: Massive's socket host, sockets allowed per client address and
    per signed-in user, and the speed of a `csv:` replay under SERVE_AS_OF."""

    massive_ws_base: str = "wss://socket.massive.com"  # MASSIVE_WS_BASE
    max_sockets: int = 20  # LIVE_MAX_SOCKETS
    replay_speed: float = 60.0  # LIVE_REPLAY_SPEED: replayed market seconds per real second


@dataclass(frozen=True)
class LedgerSettings:
    """The public transparency log: its origin line (and key name), its signing key, how often it
    signs a new checkpoint while entries arrive, and the witnesses whose cosignatures it serves."""

    origin: str = "127.0.0.1:8000/ledger"  # LEDGER_ORIGIN; default: PUBLIC_BASE_URL's host + /ledger
    signing_key: str | None = None  # LEDGER_SIGNING_KEY: base64 Ed25519 seed; unset: generated in SERVE_STATE_DIR
    checkpoint_s: float = 10.0  # LEDGER_CHECKPOINT_S
    witnesses: tuple[str, ...] = ()  # LEDGER_WITNESSES: witnesses' vkeys, comma-separated


# SERVE_PORT + these, unless a port's own variable names it: two instances never collide
PORT_OFFSETS: dict[str, int] = {"metrics": 1101, "stats": 404, "fallback": 500}
# the API replicas' servers take REPLICA_PORT_SPAN ports on each node from REPLICA_PORT_BASE +
# (SERVE_PORT mod 100) x REPLICA_PORT_SPAN: 30000-30099 for 8000, always below 40000 (an offset
# would run past 65535 for a high SERVE_PORT); Ray skips a port it finds taken
REPLICA_PORT_BASE, REPLICA_PORT_SPAN = 30000, 100


@dataclass(frozen=True)
class ServePorts:
    """Every port `python -m serve_app` opens besides SERVE_PORT (the defaults: SERVE_PORT 8000)."""

    metrics: int = 9101  # SERVE_METRICS_PORT: HAProxy's Prometheus frontend, on SERVE_HOST
    stats: int = 8404  # SERVE_STATS_PORT: HAProxy's stats page, on SERVE_HOST
    fallback: int = 8500  # SERVE_FALLBACK_PORT: Ray's Python proxy, HAProxy's fallback
    replicas_from: int = 30000  # SERVE_REPLICA_PORT_MIN: the API replicas' own HTTP servers

    @property
    def replicas_to(self) -> int:
        return self.replicas_from + REPLICA_PORT_SPAN - 1


@dataclass(frozen=True)
class Settings:
    data_dir: str
    model_dir: str
    database_url: str
    redis_url: str | None
    market_source: MarketSource
    massive_api_key: str | None
    massive_api_base: str
    massive_retries: int
    massive_backoff_s: float
    serve_host: str
    serve_port: int
    accounts: AccountSettings
    billing: BillingSettings
    limits: Limits
    email: EmailSettings
    live: LiveSettings = LiveSettings()
    serve_as_of: datetime | None = None  # SERVE_AS_OF: serve as of this past moment (demos, replays)
    ports: ServePorts = ServePorts()
    # SERVE_STATE_DIR: where `python -m serve_app` records its processes (pid files), so that the
    # next start on the same port ends what a crashed one left behind
    serve_state_dir: str = "./var/run"
    ledger: LedgerSettings = LedgerSettings()
    # DATABASE_MIGRATION_URL: the owner role that migrates, where the service runs as a role that
    # may not change what the public log hashes (`storage.roles`); never handed to the replicas
    database_migration_url: str | None = None


TIERS: tuple[str, ...] = ("free", "premium", "pro")
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Quotas:
    """Forecasts per UTC day, by tier; `anonymous` counts per client address."""

    anonymous: int
    free: int
    premium: int
    pro: int


@dataclass(frozen=True)
class AccountSettings:
    """Identity and quota settings: session lifetime, cookies, daily quotas per tier."""

    quotas: Quotas
    session_ttl_days: int
    cookie_secure: bool
    public_base_url: str = "http://127.0.0.1:8000"  # PUBLIC_BASE_URL: where emailed links point

    def quota(self, tier: str | None) -> int:
        """The daily forecast limit of a tier; `None` is an anonymous caller."""
        return int(getattr(self.quotas, tier or ANONYMOUS))


@dataclass(frozen=True)
class TierLimits:
    """How many of their own objects a user of one tier may keep."""

    watchlists: int
    watchlist_items: int  # per watchlist
    active_alerts: int


@dataclass(frozen=True)
class Limits:
    """LIMIT_WATCHLISTS_<TIER>, LIMIT_WATCHLIST_ITEMS_<TIER>, LIMIT_ALERTS_<TIER>."""

    free: TierLimits
    premium: TierLimits
    pro: TierLimits

    def of(self, tier: str) -> TierLimits:
        return getattr(self, tier if tier in TIERS else "free")


@dataclass(frozen=True)
class EmailSettings:
    """Emails through Resend; without a key they go to the log and, if set, the outbox folder."""

    api_key: str | None
    api_base: str | None  # None: Resend's own; tests name a loopback server
    sender: str
    outbox_dir: str | None = None  # EMAIL_OUTBOX: where unsent emails are kept whole, without a key


DEFAULT_LIMITS = {"free": (3, 20, 5), "premium": (10, 100, 50), "pro": (50, 500, 500)}


@dataclass(frozen=True)
class BillingSettings:
    """Stripe; billing is off without an API key."""

    api_key: str | None
    api_base: str | None  # None: Stripe's own; tests name a loopback server
    webhook_secret: str | None
    price_premium: str | None
    price_pro: str | None
    public_base_url: str  # where Checkout and the portal send the user back

    @property
    def enabled(self) -> bool:
        return bool(self.api_key)

    def price_of(self, tier: str) -> str | None:
        return {"premium": self.price_premium, "pro": self.price_pro}.get(tier)

    def tier_of_price(self, price_id: str | None) -> str | None:
        return {self.price_premium: "premium", self.price_pro: "pro"}.get(price_id) if price_id else None


DEFAULT_QUOTAS = {ANONYMOUS: 5, "free": 10, "premium": 100, "pro": 1000}


def mask_url(value: str) -> str:
    """A URL fit for messages and logs: any password replaced by ***."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", value)


def _parse_database_url(value: str, name: str = "DATABASE_URL") -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    expect = "expected sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"
    shown = mask_url(value)
    try:
        url = make_url(value)
    except ArgumentError:
        raise ConfigError(f"{name}={shown!r} is not a database URL; {expect}") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(f"{name}={shown!r} names backend {url.get_backend_name()!r}; {expect}")
    if url.get_backend_name() == "postgresql" and url.get_driver_name() not in ("psycopg", "psycopg2"):
        # psycopg 3 is the driver we ship; a bare postgresql:// is rewritten to it.
        if "+" in url.drivername:
            raise ConfigError(f"{name}={shown!r} names driver {url.get_driver_name()!r}; {expect}")
    if url.get_backend_name() == "postgresql" and "+" not in url.drivername:
        value = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return value


def _parse_redis_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    from urllib.parse import urlparse

    parsed = urlparse(value)
    if parsed.scheme not in ("redis", "rediss", "unix") or (parsed.scheme != "unix" and not parsed.hostname):
        raise ConfigError(f"REDIS_URL={mask_url(value)!r} is not a Redis URL; expected redis://HOST:PORT/DB")
    return value


def _parse_market_source(value: str) -> MarketSource:
    expect = "expected 'synthetic', 'massive' or 'csv:<dir>'"
    if value in ("synthetic", "massive"):
        return MarketSource(kind=value)
    if value.startswith("csv:"):
        directory = value[len("csv:") :]
        if not directory:
            raise ConfigError(f"MARKET_SOURCE={value!r} names no directory; {expect}")
        return MarketSource(kind="csv", csv_dir=Path(directory))
    raise ConfigError(f"MARKET_SOURCE={value!r} is unknown; {expect}")




def _parse_port(value: str, name: str = "SERVE_PORT") -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name}={value!r} is not a TCP port; expected an integer 1-65535")
    return port


def _derived_port(env: Mapping[str, str], name: str, serve_port: int, offset: int, span: int = 1) -> int:
    """A port of the service's own (the first of `span`): the variable `name`, else SERVE_PORT +
    `offset`."""
    port = _parse_port(env[name], name) if env.get(name) else serve_port + offset
    if port + span - 1 > 65535:
        source = f"{name}={port}" if env.get(name) else f"SERVE_PORT={serve_port} + {offset}"
        raise ConfigError(f"{source} leaves no room for {span} port(s) below 65536; set {name}")
    return port


def _serve_ports(env: Mapping[str, str], serve_port: int) -> ServePorts:
    return ServePorts(
        metrics=_derived_port(env, "SERVE_METRICS_PORT", serve_port, PORT_OFFSETS["metrics"]),
        stats=_derived_port(env, "SERVE_STATS_PORT", serve_port, PORT_OFFSETS["stats"]),
        fallback=_derived_port(env, "SERVE_FALLBACK_PORT", serve_port, PORT_OFFSETS["fallback"]),
        replicas_from=_derived_port(env, "SERVE_REPLICA_PORT_MIN", serve_port,
                                    REPLICA_PORT_BASE + serve_port % 100 * REPLICA_PORT_SPAN - serve_port,
                                    REPLICA_PORT_SPAN))


def _parse_number(name: str, value: str, kind: type, low: float, high: float) -> float:
    try:
        number = kind(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise ConfigError(f"{name}={value!r} is out of range; expected {kind.__name__} in [{low}, {high}]")
    return number


def _parse_moment(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a date or ISO time; expected e.g. 2024-12-31 or "
                          "2024-12-31T12:00:00Z") from None
    return as_utc(moment)


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean; expected true or false")


def _public_base_url(env: Mapping[str, str], serve_host: str, serve_port: int) -> str:
    public = (env.get("PUBLIC_BASE_URL") or f"http://{serve_host}:{serve_port}").rstrip("/")
    if not public.startswith(("http://", "https://")):
        raise ConfigError(f"PUBLIC_BASE_URL={public!r} is not an http(s) URL; expected e.g. https://cryptocast.example")
    return public


def _account_settings(env: Mapping[str, str], public_base_url: str) -> AccountSettings:
    quotas = Quotas(**{
        tier: int(_parse_number(f"QUOTA_{tier.upper()}", env.get(f"QUOTA_{tier.upper()}") or str(default), int, 0,
                                10**9))
        for tier, default in DEFAULT_QUOTAS.items()
    })
    return AccountSettings(
        quotas=quotas,
        session_ttl_days=int(_parse_number("SESSION_TTL_DAYS", env.get("SESSION_TTL_DAYS") or "30", int, 1, 3650)),
        cookie_secure=_parse_bool("COOKIE_SECURE", env.get("COOKIE_SECURE") or "false"),
        public_base_url=public_base_url,
    )


def _billing_settings(env: Mapping[str, str], public: str) -> BillingSettings:
    base = (env.get("STRIPE_API_BASE") or "").rstrip("/") or None
    if base is not None and not base.startswith(("http://", "https://")):
        raise ConfigError("STRIPE_API_BASE is not an http(s) URL; expected e.g. https://api.stripe.com")
    return BillingSettings(
        api_key=env.get("STRIPE_API_KEY") or None, api_base=base,
        webhook_secret=env.get("STRIPE_WEBHOOK_SECRET") or None,
        price_premium=env.get("STRIPE_PRICE_PREMIUM") or None, price_pro=env.get("STRIPE_PRICE_PRO") or None,
        public_base_url=public,
    )


def _limits(env: Mapping[str, str]) -> Limits:
    def number(name: str, default: int) -> int:
        return int(_parse_number(name, env.get(name) or str(default), int, 0, 10**6))

    return Limits(**{tier: TierLimits(number(f"LIMIT_WATCHLISTS_{tier.upper()}", w),
                                      number(f"LIMIT_WATCHLIST_ITEMS_{tier.upper()}", i),
                                      number(f"LIMIT_ALERTS_{tier.upper()}", a))
                     for tier, (w, i, a) in DEFAULT_LIMITS.items()})


def _live_settings(env: Mapping[str, str]) -> LiveSettings:
    ws_base = (env.get("MASSIVE_WS_BASE") or "wss://socket.massive.com").rstrip("/")
    if not ws_base.startswith(("ws://", "wss://")) or "://" == ws_base[-3:]:
        raise ConfigError(f"MASSIVE_WS_BASE={ws_base!r} is not a ws:// or wss:// address, e.g. wss://socket.massive.com")
    return LiveSettings(
        massive_ws_base=ws_base,
        max_sockets=int(_parse_number("LIVE_MAX_SOCKETS", env.get("LIVE_MAX_SOCKETS") or "20", int, 1, 10**5)),
        replay_speed=_parse_number("LIVE_REPLAY_SPEED", env.get("LIVE_REPLAY_SPEED") or "60", float, 0.01, 10**5),
    )


def _ledger_settings(env: Mapping[str, str], public_base_url: str) -> LedgerSettings:
    origin = env.get("LEDGER_ORIGIN") or public_base_url.split("://", 1)[1] + "/ledger"
    if "\n" in origin or " " in origin or "+" in origin:
        raise ConfigError(f"LEDGER_ORIGIN={origin!r} must be one line without spaces or '+', e.g. cryptocast.example/ledger")
    witnesses = tuple(w.strip() for w in (env.get("LEDGER_WITNESSES") or "").split(",") if w.strip())
    return LedgerSettings(
        origin=origin, signing_key=env.get("LEDGER_SIGNING_KEY") or None,
        checkpoint_s=_parse_number("LEDGER_CHECKPOINT_S", env.get("LEDGER_CHECKPOINT_S") or "10", float, 0, 86400),
        witnesses=witnesses)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raises ConfigError naming the first bad variable."""
    env = os.environ if environ is None else environ
    serve_host = env.get("SERVE_HOST") or "127.0.0.1"
    serve_port = _parse_port(env.get("SERVE_PORT") or "8000")
    market_source = _parse_market_source(env.get("MARKET_SOURCE") or "synthetic")
    massive_api_key = env.get("MASSIVE_API_KEY") or env.get("POLYGON_API_KEY") or None
    if market_source.kind == "massive" and not massive_api_key:
        raise ConfigError("MARKET_SOURCE=massive needs MASSIVE_API_KEY (or POLYGON_API_KEY): the API key of your "
                          "Massive (Polygon.io) account")
    public = _public_base_url(env, serve_host, serve_port)
    return Settings(
        data_dir=env.get("DATA_DIR") or "./var/data",
        model_dir=env.get("MODEL_DIR") or "./var/models",
        database_url=_parse_database_url(env.get("DATABASE_URL") or "sqlite:///./var/app.db"),
        redis_url=_parse_redis_url(env.get("REDIS_URL")),
        market_source=market_source,
        massive_api_key=massive_api_key,
        massive_api_base=(env.get("MASSIVE_API_BASE") or "https://api.massive.com").rstrip("/"),
        massive_retries=int(_parse_number("MASSIVE_RETRIES", env.get("MASSIVE_RETRIES") or "5", int, 0, 20)),
        massive_backoff_s=_parse_number("MASSIVE_BACKOFF_S", env.get("MASSIVE_BACKOFF_S") or "0.5", float, 0, 60),
        serve_host=serve_host,
        serve_port=serve_port,
        accounts=_account_settings(env, public),
        billing=_billing_settings(env, public),
        limits=_limits(env),
        email=EmailSettings(api_key=env.get("RESEND_API_KEY") or None,
                            api_base=(env.get("RESEND_API_BASE") or "").rstrip("/") or None,
                            sender=env.get("ALERT_FROM_EMAIL") or "cryptocast alerts <alerts@cryptocast.invalid>",
                            outbox_dir=env.get("EMAIL_OUTBOX") or "./var/outbox"),
        live=_live_settings(env),
        serve_as_of=_parse_moment("SERVE_AS_OF", env.get("SERVE_AS_OF")),
        ports=_serve_ports(env, serve_port),
        serve_state_dir=env.get("SERVE_STATE_DIR") or "./var/run",
        ledger=_ledger_settings(env, public),
        database_migration_url=(_parse_database_url(env["DATABASE_MIGRATION_URL"], "DATABASE_MIGRATION_URL")
                                if env.get("DATABASE_MIGRATION_URL") else None),
    )


# Every variable this module reads: what a process hands on to the replicas it deploys.
VARIABLES: tuple[str, ...] = (
    "DATA_DIR", "MODEL_DIR", "DATABASE_URL", "REDIS_URL", "MARKET_SOURCE", "MASSIVE_API_KEY", "POLYGON_API_KEY",
    "MASSIVE_API_BASE", "MASSIVE_RETRIES", "MASSIVE_BACKOFF_S", "MASSIVE_WS_BASE", "LIVE_MAX_SOCKETS",
    "LIVE_REPLAY_SPEED", "SERVE_HOST", "SERVE_PORT", "SERVE_AS_OF",
    "SERVE_METRICS_PORT", "SERVE_STATS_PORT", "SERVE_FALLBACK_PORT", "SERVE_REPLICA_PORT_MIN", "SERVE_STATE_DIR",
    "QUOTA_ANONYMOUS", "QUOTA_FREE", "QUOTA_PREMIUM", "QUOTA_PRO", "SESSION_TTL_DAYS", "COOKIE_SECURE",
    "STRIPE_API_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET", "STRIPE_PRICE_PREMIUM", "STRIPE_PRICE_PRO",
    "PUBLIC_BASE_URL", "LEDGER_ORIGIN", "LEDGER_SIGNING_KEY", "LEDGER_CHECKPOINT_S", "LEDGER_WITNESSES",
    "RESEND_API_KEY", "RESEND_API_BASE", "ALERT_FROM_EMAIL", "EMAIL_OUTBOX",
    *(f"LIMIT_{kind}_{tier.upper()}" for kind in ("WATCHLISTS", "WATCHLIST_ITEMS", "ALERTS") for tier in TIERS),
)


def environ_snapshot(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's configuration variables, for replicas that must use the same settings
    (relative paths made absolute: a replica's working directory is not ours)."""
    env = os.environ if environ is None else environ
    snapshot = {k: env[k] for k in VARIABLES if env.get(k)}
    for key, default in (("DATA_DIR", "./var/data"), ("MODEL_DIR", "./var/models"), ("SERVE_STATE_DIR", "./var/run")):
        value = snapshot.get(key, default)
        if "://" not in value:
            snapshot[key] = str(Path(value).resolve())
    url = snapshot.get("DATABASE_URL", "sqlite:///./var/app.db")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        snapshot["DATABASE_URL"] = "sqlite:///" + str(Path(url[len("sqlite:///"):]).resolve())
    return snapshot


def settings_or_exit() -> Settings:
    """Entry points call this: a bad variable ends the program with one readable line."""
    try:
        return load_settings()
    except ConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
