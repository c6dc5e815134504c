"""The Ray Serve application: one HTTP ingress (FastAPI) and one forecaster deployment per
timeframe, each holding the active model of its timeframe and polling the registry so that a
newly activated version takes over without downtime.

`serve deploy serve_app/serve_config.yaml` deploys `app` on a cluster; `python -m serve_app`
runs it locally with the same replica counts, limits and autoscaling, read from that file
(`deployment_options`). Replicas get their settings as deployment arguments (`environ`) from
whoever builds the application, so they serve the database and cache it was started with.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError

from accuracy.tracker import live_summaries
from clock import utc_now
from config import load_settings
from features.profiles import profile_for
from market_data.factory import make_source, make_stream
from market_data.timeframes import TIMEFRAMES
from predictions.errors import PredictionError
from serve_app.active_models import ActiveModels, NoActiveModel
from serve_app.app import create_app
from serve_app.metrics import LiveAccuracyGauges, Metrics, UpstreamGauges
from serve_app.replica_log import show_replica_lines
from serve_app.state_dir import StateDir
from serve_app.stopping import DrainFlag, report_when_stopping
from serve_app.wiring import build_service
from storage.cache import decode_frame, encode_frame
from storage.db import make_engine
from storage.lake import Lake
from storage.registry import ModelRegistry
from streaming.relay import Batch, Relay, RelayedStream
from training.forecast import Forecast

log = logging.getLogger(__name__)
DEFAULT_POLL_S = 10.0
ACCURACY_REFRESH_S = 300.0  # how often a forecaster republishes its model's live accuracy gauges
MARKET_REFRESH_S = 300.0  # how often it replays its band's market-wide adaptation over the lake
# a new replica's first replay waits this long: a replica restarted after a node is lost must
# first take over its share of the load (the replay reads every coin of the lake); meanwhile its
# band is the validated one (what a model without the adaptation states)
MARKET_FIRST_S = 60.0
REPLICA_RETRY_S = 30.0  # how long a request waits for a dead forecaster replica's replacement
# Forecasts a replica computes at once. A forecast is CPU-bound and holds the GIL for much of
# it, so more threads would only share the same cores; the replica's other requests wait, in
# arrival order, in its executor's queue (see `TimeframeForecaster.forecast`).
FORECAST_THREADS = 2
SERVE_CONFIG = Path(__file__).with_name("serve_config.yaml")

APP_NAME = "cryptocast"  # the Serve application, as serve_config.yaml names it


def deployment_options(path: Path = SERVE_CONFIG) -> dict[str, dict[str, Any]]:
    """Each deployment's options in `serve_config.yaml` (replicas, autoscaling, request limits,
    actor resources), keyed by deployment name, for `.options()`: one configuration for
    `serve deploy` and `python -m serve_app`."""
    config = yaml.safe_load(path.read_text())
    app = next(a for a in config["applications"] if a["name"] == APP_NAME)
    return {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in app.get("deployments", [])}


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, user_config={"poll_s": DEFAULT_POLL_S})
class TimeframeForecaster:
    """Holds the active model of one timeframe; reloads it when the registry activates another."""

    def __init__(self, timeframe: str, environ: dict[str, str] | None = None) -> None:
        show_replica_lines()
        settings = load_settings(environ)
        self.timeframe = timeframe
        self.models = ActiveModels(ModelRegistry(make_engine(settings.database_url), settings.model_dir), [timeframe])
        self.poll_s = DEFAULT_POLL_S
        self._gauges = LiveAccuracyGauges()
        self._published = 0.0
        self.lake, self._tracked = Lake(settings.data_dir), time.monotonic() - MARKET_REFRESH_S + MARKET_FIRST_S
        self._stop = threading.Event()
        self._compute = ThreadPoolExecutor(FORECAST_THREADS, thread_name_prefix=f"forecast_{timeframe}")
        threading.Thread(target=self._poll, daemon=True).start()

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.poll_s = float(config.get("poll_s", DEFAULT_POLL_S))

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                switched = self.models.refresh()
                if switched or time.monotonic() - self._tracked >= MARKET_REFRESH_S:
                    self._track_market()
                if time.monotonic() - self._published >= ACCURACY_REFRESH_S:
                    self._publish_accuracy()
            except Exception as exc:
                log.warning("registry poll failed: %s", exc)

    def _track_market(self) -> None:
        self._tracked = time.monotonic()
        for line in self.models.track_market(self.lake, pd.Timestamp(utc_now())).values():
            log.info("market band %s", line)

    def _publish_accuracy(self) -> None:
        self._published = time.monotonic()
        registry = self.models.registry
        record = registry.active(self.timeframe)
        if record is None:
            return
        for live in live_summaries(registry.engine, {self.timeframe: record}, utc_now()):
            self._gauges.publish(live)

    def refresh(self) -> list[str]:
        return self.models.refresh()

    def version(self) -> str | None:
        return self.models.versions()[self.timeframe]

    async def forecast(self, candles: bytes, steps: int) -> Forecast:
        """Computed in the replica's own small thread pool, never on its event loop: the loop
        keeps answering the routers' queue-length probes while forecasts run, and requests the
        replica has accepted wait in its queue in arrival order. (When the replica itself was the
        queue's limit, each ingress replica's router polled it with back-off, and one request
        could lose the race to the other ingress's requests for seconds.)"""
        frame = decode_frame(candles)
        return await asyncio.get_running_loop().run_in_executor(
            self._compute, self.models.forecast, self.timeframe, frame, steps)


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.05}, user_config={"every_s": 60.0})
class AlertScannerDeployment:
    """`jobs.scan_alerts` inside the application: one replica scans the price alerts every minute
    (two replicas would only race for the same triggers, which the scanner makes harmless)."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        show_replica_lines()
        from portfolio.scanner import AlertScanner

        self.scanner = AlertScanner.for_settings(load_settings(environ))
        self.every_s = 60.0
        self.last: str | None = None
        self._stop = threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.every_s = float(config.get("every_s", 60.0))

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.last = self.scanner.scan().describe()
                log.info(self.last)
            except Exception as exc:
                log.warning("alert scan failed: %s", exc)

    def status(self) -> str | None:
        return self.last


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.05}, max_ongoing_requests=1000)
class LiveStream:
    """The cluster's one connection to the live market: every API replica long-polls it for the
    ticks of the symbols its viewers watch (`streaming.relay`), so a thousand viewers of a coin
    on any number of replicas cost one upstream subscription."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        show_replica_lines()
        settings = load_settings(environ)
        stream = make_stream(settings, make_source(settings))
        self.relay = None if stream is None else Relay(stream)
        self._gauges = UpstreamGauges()
        self._published = 0.0

    async def poll(self, holder: str, tickers: list[str], cursor: int) -> Batch:
        if self.relay is None:
            raise RuntimeError("this service has no live market")
        batch = await self.relay.poll(holder, tickers, cursor)
        if time.monotonic() - self._published >= 5.0:
            self._published = time.monotonic()
            self._gauges.publish(self.relay.subscriptions(), self.relay.reconnects)
        return batch


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
@serve.ingress()
class Api:
    """The HTTP ingress; its FastAPI app is built in the replica, around the replica's service."""

    def __init__(self, forecasters: dict[str, Any], environ: dict[str, str] | None = None,
                 cache_prefix: str = "", scanner: Any = None, live_stream: Any = None) -> None:
        self.forecasters, self.scanner, self.live_stream = forecasters, scanner, live_stream
        show_replica_lines()  # one JSON line per request, to the terminal and the replica's log file

        def forecast(timeframe: str, candles: pd.DataFrame, steps: int) -> Forecast:
            payload = encode_frame(candles)
            deadline = time.monotonic() + REPLICA_RETRY_S
            while True:
                try:
                    return self.forecasters[timeframe].forecast.remote(payload, steps).result()
                except (RayActorError, ActorUnavailableError) as exc:
                    # the replica died (node lost, killed): the router sends the retry to a live
                    # replica, or waits while the controller replaces the only one
                    if time.monotonic() > deadline:
                        raise PredictionError(503, "forecaster_unavailable",
                                       f"the {timeframe} forecaster is restarting; please retry") from exc
                    time.sleep(0.1)
                except BackPressureError as exc:
                    raise PredictionError(503, "overloaded", f"the {timeframe} forecaster is busy; please retry in a few "
                                                      "seconds", headers={"Retry-After": "2"}) from exc
                except RayTaskError as exc:
                    # the replica's own error, without Ray's traceback (pids, node address, paths)
                    if isinstance(exc.cause, NoActiveModel):
                        raise NoActiveModel(str(exc.cause)) from None
                    log.error("the %s forecaster failed: %s", timeframe, exc)
                    raise PredictionError(500, "forecast_failed", "the forecast failed; please try again") from None

        holder = uuid.uuid4().hex  # this replica, to the relay: its lease on the symbols it watches

        async def poll(tickers: list[str], cursor: int) -> Batch:
            batch: Batch = await self.live_stream.poll.remote(holder, tickers, cursor)
            return batch

        relayed = RelayedStream(poll) if live_stream is not None else None
        settings = load_settings(environ)
        services = build_service(settings, forecast=forecast,
                                 window=lambda tf: profile_for(tf).serving_window, cache_prefix=cache_prefix,
                                 live_stream=relayed)
        self.fastapi = create_app(services.predictions, services.accounts, services.billing, Metrics(),
                                  services.portfolio, services.live)
        self.fastapi.state.log = services.log
        state = StateDir.of(settings)
        self.fastapi.state.stopping = DrainFlag(state.drain_flag)
        report_when_stopping(DrainFlag(state.drain_flag), self.fastapi.state.in_flight, state.drain_reports)
        self.fastapi.state.versions = lambda: {tf: h.version.remote().result() for tf, h in self.forecasters.items()}

    def __serve_build_asgi_app__(self) -> Any:
        return self.fastapi


def build_app(environ: dict[str, str] | None = None, cache_prefix: str = "", poll_s: float | None = None,
              options: dict[str, dict[str, Any]] | None = None) -> Any:
    """The application graph. `environ` is the configuration every replica uses (`python -m
    serve_app` passes its own); `None` lets each replica read its environment (the cluster's
    runtime environment under `serve deploy`). `options` default to `serve_config.yaml`'s."""
    options = deployment_options() if options is None else options
    forecasters = {}
    for tf in TIMEFRAMES:
        opts = dict(options.get(f"forecaster_{tf}", {}))
        if poll_s is not None:
            opts["user_config"] = {"poll_s": poll_s}
        forecasters[tf] = TimeframeForecaster.options(name=f"forecaster_{tf}", **opts).bind(tf, environ)
    scanner = AlertScannerDeployment.options(name="alert_scanner", **options.get("alert_scanner", {})).bind(environ)
    live = LiveStream.options(name="live_stream", **options.get("live_stream", {})).bind(environ)
    return Api.options(**options.get("Api", {})).bind(forecasters, environ, cache_prefix, scanner, live)


app = build_app()
