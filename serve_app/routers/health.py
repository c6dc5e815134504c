"""Health: the database, the cache and the active model of each timeframe."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request

from serve_app.dependencies import Live, Predictions
from serve_app.errors import ERRORS
from serve_app.schemas import HealthResponse, LiveHealth

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"], responses=ERRORS)


def _versions(request: Request) -> dict[str, str | None]:
    """Each timeframe's active model version, as the forecasting replicas report it."""
    versions: Callable[[], dict[str, str | None]] = request.app.state.versions
    return versions()


Versions = Annotated[dict[str, str | None], Depends(_versions)]


@router.get("/api/health", response_model=HealthResponse)
def health(service: Predictions, versions: Versions, live: Live) -> HealthResponse:
    """`ok`, or `degraded` when the database or cache is unreachable or no model is active."""
    status = "ok"
    try:
        with service.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        database = "ok"
    except Exception as exc:
        log.error("health: database unreachable: %s", exc)
        database, status = "unavailable", "degraded"
    try:
        service.cache.set("health:probe", b"1", 5)
        cache = "ok" if service.cache.get("health:probe") == b"1" else "unavailable"
    except Exception as exc:
        log.error("health: cache unreachable: %s", exc)
        cache, status = "unavailable", "degraded"
    if not any(versions.values()):
        status = "degraded"
    live_health = None if live is None else LiveHealth(state=live.hub.state, viewers=live.hub.stats.viewers,
                                                       upstream_subscriptions=live.upstream())
    return HealthResponse(status=status, database=database, cache=cache, models=versions,
                          live=live_health)
