"""The Ray Serve application: one HTTP ingress (FastAPI) and one forecaster deployment per
timeframe, each holding the active model of its timeframe and polling the registry so that a
newly activated version takes over without downtime.

`serve deploy serve_app/serve_config.yaml` deploys `app` on a cluster; `python -m serve_app`
runs it locally. Replica counts and autoscaling live in `serve_config.yaml`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pandas as pd
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError

from config import TIMEFRAMES, load_settings
from features.profiles import profile_for
from serve_app.active_models import ActiveModels
from serve_app.app import create_app
from serve_app.metrics import Metrics
from serve_app.service import ApiError
from serve_app.wiring import build_service
from storage.cache import decode_frame, encode_frame
from storage.db import make_engine
from storage.registry import ModelRegistry

log = logging.getLogger(__name__)
DEFAULT_POLL_S = 30.0
REPLICA_RETRY_S = 30.0  # how long a request waits for a dead forecaster replica's replacement


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, user_config={"poll_s": DEFAULT_POLL_S})
class TimeframeForecaster:
    """Holds the active model of one timeframe; reloads it when the registry activates another."""

    def __init__(self, timeframe: str, environ: dict[str, str] | None = None) -> None:
        settings = load_settings(environ)
        self.timeframe = timeframe
        self.models = ActiveModels(ModelRegistry(make_engine(settings.database_url), settings.model_dir), [timeframe])
        self.poll_s = DEFAULT_POLL_S
        self._stop = threading.Event()
        threading.Thread(target=self._poll, daemon=True).start()

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.poll_s = float(config.get("poll_s", DEFAULT_POLL_S))

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.models.refresh()
            except Exception as exc:  # noqa: BLE001 - a registry hiccup must not stop serving
                log.warning("registry poll failed: %s", exc)

    def refresh(self) -> list[str]:
        return self.models.refresh()

    def version(self) -> str | None:
        return self.models.versions()[self.timeframe]

    def forecast(self, candles: bytes, steps: int) -> dict[str, Any]:
        return self.models.forecast(self.timeframe, decode_frame(candles), steps)


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
@serve.ingress()
class Api:
    """The HTTP ingress; its FastAPI app is built in the replica, around the replica's service."""

    def __init__(self, forecasters: dict[str, Any], environ: dict[str, str] | None = None,
                 cache_prefix: str = "") -> None:
        self.forecasters = forecasters

        def forecast(timeframe: str, candles: pd.DataFrame, steps: int) -> dict[str, Any]:
            payload = encode_frame(candles)
            deadline = time.monotonic() + REPLICA_RETRY_S
            while True:
                try:
                    return self.forecasters[timeframe].forecast.remote(payload, steps).result()
                except (RayActorError, ActorUnavailableError) as exc:
                    # the replica died (node lost, killed); the controller is replacing it
                    if time.monotonic() > deadline:
                        raise ApiError(503, "forecaster_unavailable",
                                       f"the {timeframe} forecaster is restarting; please retry") from exc
                    time.sleep(0.5)

        services = build_service(load_settings(environ), forecast=forecast,
                                 window=lambda tf: profile_for(tf).serving_window, cache_prefix=cache_prefix)
        self.fastapi = create_app(services.predictions, services.accounts, services.billing, Metrics())
        self.fastapi.state.versions = lambda: {tf: h.version.remote().result() for tf, h in self.forecasters.items()}

    def __serve_build_asgi_app__(self) -> Any:
        return self.fastapi


def build_app(environ: dict[str, str] | None = None, cache_prefix: str = "", poll_s: float = DEFAULT_POLL_S,
              api_replicas: int = 1) -> Any:
    """The application graph. `environ` replaces the replicas' environment (tests); by default
    each replica reads its own, which the cluster's runtime environment sets."""
    forecasters = {
        tf: TimeframeForecaster.options(name=f"forecaster_{tf}", user_config={"poll_s": poll_s}).bind(tf, environ)
        for tf in TIMEFRAMES
    }
    return Api.options(num_replicas=api_replicas).bind(forecasters, environ, cache_prefix)


app = build_app()
