"""Shared fixtures: a fresh database per test on SQLite and on the real PostgreSQL, a cache with
its own key prefix on the in-process TTL cache and on the real Redis, and the HTTP app's world
(`world`, `client_for`: a migrated database with ranked synthetic coins and a flat forecaster).

PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) run on every machine of this project,
CI included; when one is missing the test fails with a message saying so, it is never skipped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from accounts.service import AccountService
from billing.service import BillingService
from clock import utc_now
from config import load_settings
from mail.sender import EmailNotifier
from market_data.csv_source import CsvSource
from market_data.synthetic import SyntheticMarket
from market_data.update import update_pair
from portfolio.service import Portfolio
from predictions.market import MarketView
from predictions.service import PredictionService
from serve_app.app import create_app
from storage.cache import Cache, MemoryCache, RedisCache
from storage.db import make_engine, session_scope
from storage.lake import Lake
from storage.migrate import upgrade
from storage.registry import ModelRegistry
from storage.schema import ModelRecord, Symbol, User
from streaming.live import LiveMarket
from training.forecast import Forecast, ForecastStep

PG_ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
PG_URL_TEMPLATE = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/{db}")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
T = TypeVar("T")
# every horizon of the backtest JSON: errors, directions, coverage and the band's proper scores
BACKTEST_METRICS = {"mae", "mase", "directional_accuracy", "coverage_80", "interval_score", "pinball_10", "pinball_90"}
# a model's horizons add its stated and unshrunk MAE ratios to naive's
MODEL_METRICS = BACKTEST_METRICS | {"mae_ratio", "raw_mae_ratio"}
# real candles committed with the tests (tests/data/README.md); benchmarks may read ../shared/data
DATA = Path(__file__).resolve().parent / "data"
DAILY_DATA = DATA / "binance_daily"
HOURLY_DATA = DATA / "binance_hourly"


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for this test and is not reachable at {PG_ADMIN_DSN!r}: {exc}")


@contextlib.contextmanager
def _fresh_pg_database() -> Iterator[str]:
    """A brand-new, empty PostgreSQL database's URL, dropped on leaving."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL_TEMPLATE.format(db=name)
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A brand-new, empty PostgreSQL database, dropped after the test."""
    with _fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="module")
def pg_database_url_module() -> Iterator[str]:
    """A PostgreSQL database for one module's tests (a served world is built once per module)."""
    with _fresh_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    return request.getfixturevalue("pg_database_url")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated database on each backend."""
    upgrade(database_url)
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def redis_cache() -> Iterator[RedisCache]:
    cache = RedisCache(TEST_REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:")
    try:
        cache.ping()
    except Exception as exc:
        pytest.fail(f"Redis is required for this test and is not reachable at {TEST_REDIS_URL}: {exc}")
    yield cache
    cache.delete_prefix()


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> Cache:
    if request.param == "memory":
        return MemoryCache()
    return request.getfixturevalue("redis_cache")


@pytest.fixture
def binance_dir() -> Path:
    if not DAILY_DATA.is_dir():
        pytest.fail(f"the real-data fixture is missing: {DAILY_DATA}")
    return DAILY_DATA


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One local Ray instance for the whole session (a GCS port other than Redis's 6379)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def process_running(pid: int) -> bool:
    """Whether `pid` runs (a zombie, or a process gone, does not)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A Ray head started with `ray start --head --block` on free ports (never Redis's 6379),
    for `ray job submit`. Stopped by signalling the process we started, never `ray stop`."""
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    import psutil

    venv_bin = str(Path(sys.executable).parent)
    ports = {name: _free_port() for name in ("port", "dashboard-port", "dashboard-agent-listen-port",
                                              "dashboard-agent-grpc-port", "metrics-export-port",
                                              "runtime-env-agent-port", "ray-client-server-port", "node-manager-port",
                                              "object-manager-port")}
    # a throw-away local cluster: no token authentication, so `ray job submit` needs no token file
    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled"}
    log = open(tmp_path_factory.mktemp("ray_head") / "ray_start.log", "w")
    # its own temp dir (short: it holds unix sockets), so its `ray_current_cluster` file never
    # makes a later `ray.init()` elsewhere try to join this short-lived cluster
    temp_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")
    proc = subprocess.Popen(
        [str(Path(venv_bin) / "ray"), "start", "--head", "--block", "--num-cpus=2", "--include-dashboard=true",
         f"--temp-dir={temp_dir}",
         "--dashboard-host=127.0.0.1", "--disable-usage-stats", *(f"--{k}={v}" for k, v in ports.items())],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{ports['dashboard-port']}"
    children: list[psutil.Process] = []
    try:
        deadline = time.time() + 120
        while True:  # wait for the dashboard, then for its job agent (a trivial job runs)
            probe = subprocess.run([str(Path(venv_bin) / "ray"), "job", "submit", "--address", address, "--",
                                    "python", "-c", "print('ready')"], env=env, capture_output=True, text=True,
                                   timeout=120)
            if probe.returncode == 0:
                break
            if proc.poll() is not None or time.time() > deadline:
                log.flush()
                pytest.fail(f"ray head accepts no jobs: {probe.stderr[-1500:]}\n{Path(log.name).read_text()[-1500:]}")
            time.sleep(2)
        children = psutil.Process(proc.pid).children(recursive=True)
        yield {"address": address, "gcs": f"127.0.0.1:{ports['port']}", "env_path": env["PATH"], "env": env,
               "metrics": f"http://127.0.0.1:{ports['metrics-export-port']}/metrics"}
    finally:
        children = children or psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGTERM)
        try:  # a throw-away head: no need to wait out its graceful shutdown (it took the full 20 s)
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        for child in children:  # daemons the head started, by their ids
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def binance_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Daily Binance candles of eight coins up to 2024-12-31 in a lake, shared by the training tests."""
    root = tmp_path_factory.mktemp("lake")
    source = CsvSource(DAILY_DATA)
    tickers = ["X:BTCUSDT", "X:ETHUSDT", "X:SOLUSDT", "X:XRPUSDT", "X:DOGEUSDT", "X:ADAUSDT", "X:PEPEUSDT", "X:LINKUSDT"]
    for t in tickers:
        update_pair(Lake(root), source, t, "1d", datetime(2024, 12, 31, tzinfo=timezone.utc))
    return root, tickers


# -- the HTTP app's world: accounts, quotas, portfolio, billing and accuracy tests share it --------
PASSWORD = "correct horse battery"
START = datetime(2026, 3, 10, 22, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def flat_forecast(model_id: uuid.UUID):
    def forecast(timeframe: str, candles: pd.DataFrame, steps: int) -> Forecast:
        last = float(candles["close"].iloc[-1])
        start = pd.Timestamp(candles["timestamp"].iloc[-1]) + pd.Timedelta(days=1)
        return Forecast(direction="up", confidence_avg=0.5, key_indicators=["rsi_14"], model_id=str(model_id),
                        model_version="v-test",
                        steps=[ForecastStep(step=i + 1, timestamp=start + pd.Timedelta(days=i), open=last,
                                            high=last * 1.01, low=last * 0.99, close=last, lower=last * 0.95,
                                            upper=last * 1.05, confidence=0.5, direction="up",
                                            naive_lower=last * 0.9, naive_upper=last * 1.1,
                                            quantiles=tuple(last * f for f in (0.93, 0.95, 0.98, 1.0, 1.02, 1.05, 1.07)))
                              for i in range(steps)])
    return forecast


@pytest.fixture(params=["sqlite+memory", "postgresql+redis"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite+memory":
        from storage.cache import MemoryCache

        url, cache = f"sqlite:///{tmp_path / 'app.db'}", MemoryCache()
    else:
        url, cache = request.getfixturevalue("pg_database_url"), request.getfixturevalue("redis_cache")
    made = make_world(url, cache, tmp_path)
    yield made
    made["engine"].dispose()


def make_world(url: str, cache: Cache, tmp_path: Path) -> dict[str, Any]:
    """A migrated database with four synthetic coins ranked and an active 1d model row; the
    service's clock stands at START."""
    upgrade(url)
    engine = make_engine(url)
    market = SyntheticMarket(seed=7, n_coins=4, now=START.replace(tzinfo=None))
    tickers = [t.ticker for t in market.list_tickers()]
    with session_scope(engine) as s:
        for rank, t in enumerate(tickers, 1):
            s.add(Symbol(ticker=t, name=t, volume_rank=rank))
        model = ModelRecord(timeframe="1d", version="v-test", training_start=datetime(2025, 1, 1),
                            training_end=datetime(2026, 1, 1), num_symbols=4, model_path="/nowhere",
                            is_active=True, trained_at=datetime(2026, 1, 2))
        s.add(model)
    return {"url": url, "engine": engine, "cache": cache, "clock": Clock(START), "tickers": tickers,
            "market": market, "model_id": model.id, "tmp": tmp_path}


def client_for(world: dict[str, Any], **env: str) -> TestClient:
    """The HTTP app on the world's database and cache, its clock and its flat forecaster."""
    return TestClient(app_for(world, **env))


def app_for(world: dict[str, Any], live_market: LiveMarket | None = None, **env: str) -> FastAPI:
    """`client_for`'s app, to serve for real (a browser test); live candles from `live_market`."""
    settings = load_settings({"DATABASE_URL": world["url"], "EMAIL_OUTBOX": str(world["tmp"] / "outbox"), **env})
    engine, cache, clock = world["engine"], world["cache"], world["clock"]
    market = MarketView(engine, cache, world["market"], lambda tf: 20, clock)
    predictions = PredictionService(engine, cache, market, ModelRegistry(engine, world["tmp"] / "models"),
                                    flat_forecast(world["model_id"]))
    accounts = AccountService(engine, cache, settings.accounts, clock=clock, mail=EmailNotifier(settings.email))
    return create_app(predictions, accounts, BillingService(engine, settings.billing, clock=clock),
                      portfolio=Portfolio.on(engine, settings.limits, clock), live_market=live_market)


@contextlib.contextmanager
def serve_world(world: dict[str, Any], live_market: LiveMarket | None = None, **env: str) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, its links pointing at itself."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    world["clock"].now = utc_now()  # a browser's session cookie must not be born expired
    server = uvicorn.Server(uvicorn.Config(app_for(world, live_market, **{**env, "PUBLIC_BASE_URL": base}), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def register_and_login(client: TestClient, email: str) -> str:
    r = client.post("/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada"})
    assert r.status_code == 201, r.text
    r = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.cookies.clear()  # each test says how it authenticates
    return r.json()["token"]


def mark_verified(world: dict[str, Any], email: str) -> None:
    """The user of `email` has followed their verification link (what buying a tier needs)."""
    with world["engine"].begin() as conn:
        conn.execute(sa.update(User).where(User.email == email).values(email_verified=datetime(2026, 1, 1)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on a thread of its own: the module's browser (Playwright's sync API) keeps
    an event loop running on the main thread, where `asyncio.run` refuses to start another."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium through Playwright (it cannot download its own build here)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser test needs Debian's chromium at {CHROMIUM} (apt-get install chromium; "
                    ".ci/run installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()
