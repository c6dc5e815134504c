"""The Ray Serve application: one HTTP ingress (FastAPI) and one forecaster deployment per
timeframe, each holding the active model of its timeframe and polling the registry so that a
newly activated version takes over without downtime.

`serve deploy serve_app/serve_config.yaml` deploys `app` on a cluster; `python -m serve_app`
runs it locally. Replica counts and autoscaling live in `serve_config.yaml`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pandas as pd
from ray import serve

from config import TIMEFRAMES, load_settings
from features.profiles import profile_for
from serve_app.active_models import ActiveModels
from serve_app.app import create_app
from serve_app.metrics import Metrics
from serve_app.wiring import build_service
from storage.cache import decode_frame, encode_frame
from storage.db import make_engine
from storage.registry import ModelRegistry

log = logging.getLogger(__name__)
DEFAULT_POLL_S = 30.0


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, user_config={"poll_s": DEFAULT_POLL_S})
class TimeframeForecaster:
    """Holds the active model of one timeframe; reloads it when the registry activates another."""

    def __init__(self, timeframe: str) -> None:
        settings = load_settings()
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

    def __init__(self, forecasters: dict[str, Any]) -> None:
        self.forecasters = forecasters

        def forecast(timeframe: str, candles: pd.DataFrame, steps: int) -> dict[str, Any]:
            return self.forecasters[timeframe].forecast.remote(encode_frame(candles), steps).result()

        service, _ = build_service(load_settings(), forecast=forecast,
                                   window=lambda tf: profile_for(tf).serving_window)
        self.fastapi = create_app(service, Metrics())
        self.fastapi.state.versions = lambda: {tf: h.version.remote().result() for tf, h in self.forecasters.items()}

    def __serve_build_asgi_app__(self) -> Any:
        return self.fastapi


def build_app() -> Any:
    forecasters = {tf: TimeframeForecaster.options(name=f"forecaster_{tf}").bind(tf) for tf in TIMEFRAMES}
    return Api.bind(forecasters)


app = build_app()
