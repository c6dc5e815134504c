"""`python -m serve_app [--address ADDR]`: run the HTTP service in the foreground on
SERVE_HOST:SERVE_PORT. Ray is joined only on purpose: `--address` or RAY_ADDRESS names a cluster;
otherwise a local Ray of its own starts (never one a past `ray start` left recorded in /tmp/ray).
The replicas get this process's settings, and its terminal shows their request log lines (Ray's
own lines stay in its log files: launcher/terminal.py). Ctrl-C or SIGTERM stops it, letting the
requests in flight finish (launcher/drain.py)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time

from config import ConfigError, Settings, environ_snapshot, mask_url, settings_or_exit
from launcher.drain import clear_reports, soft_stop, wait_until_idle
from launcher.leftovers import claim, recorded_haproxies, release
from launcher.ray_env import apply_ray_serve_env, listener_env
from launcher.terminal import configure_driver, forward_worker_lines, quiet_ray_env
from serve_app.state_dir import StateDir
from serve_app.stopping import DrainFlag
from storage.db import database_or_exit
from storage.migrate import migration_url, upgrade
from transparency import keys

# the stop must end within 30 s (a supervisor's usual grace before SIGKILL), so within STOP_BUDGET_S
# (the rest is the interpreter's exit): the drain
# takes at most DRAIN_TIMEOUT_S + SOFT_STOP_TIMEOUT_S, Serve's shutdown what is left of the budget
# but RAY_SHUTDOWN_RESERVE_S, kept for ending the local Ray
STOP_BUDGET_S, DRAIN_TIMEOUT_S, SOFT_STOP_TIMEOUT_S, RAY_SHUTDOWN_RESERVE_S = 27.0, 15.0, 5.0, 6.0
log = logging.getLogger("serve_app")


def log_key(settings: Settings) -> str:
    """The public log's vkey (its key made now in the state directory, where there is none yet)."""
    try:
        return keys.log_signer(settings.ledger, settings.serve_state_dir).verifier.vkey
    except ConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", help="a Ray cluster to deploy to (default: RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--ray-logs", action="store_true",
                        help="print Ray's own lines too (controller, proxies, raylet); by default they stay in "
                             "Ray's log files")
    args = parser.parse_args(argv)
    configure_driver(show_ray=args.ray_logs)
    settings = settings_or_exit()
    database_or_exit(settings.database_url)
    upgrade(migration_url(settings))  # once, here, as the owner where DATABASE_MIGRATION_URL says who that is
    print(f"public log {settings.ledger.origin}: checkpoints signed by {log_key(settings)}", flush=True)
    address = args.address or os.environ.get("RAY_ADDRESS") or "local"
    state = None
    if address == "local":  # a cluster's processes took theirs from its `ray start`
        state = claim(settings)  # what a crashed run on this port left behind, ended; the ports free
        for name, value in listener_env(settings, state.haproxy_dir).items():
            os.environ.setdefault(name, value)
        apply_ray_serve_env()  # before Ray is imported: Serve reads them at import
    if not args.ray_logs:
        quiet_ray_env()
    import ray
    from ray import serve

    from serve_app.deployments import APP_NAME, build_app

    ray.init(address=address, configure_logging=False, log_to_driver=True,
             include_dashboard=None if address != "local" else False)
    forward_worker_lines(show_ray=args.ray_logs)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:  # Ctrl-C may come while the replicas are still starting: shut down cleanly either way
        serve.start(http_options={"host": settings.serve_host, "port": settings.serve_port})
        serve.run(build_app(environ=environ_snapshot()), name=APP_NAME, route_prefix="/")
        print(f"serving on http://{settings.serve_host}:{settings.serve_port} (database "
              f"{mask_url(settings.database_url)}, Ray {address}; Ctrl-C stops)", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stopping = time.monotonic()
        if state is not None:
            _drain(state, APP_NAME)
            _shut_down_serve(STOP_BUDGET_S - RAY_SHUTDOWN_RESERVE_S - (time.monotonic() - stopping))
        else:  # a cluster's Serve outlives nothing of ours: wait for it
            serve.shutdown()
        ray.shutdown()
        if state is not None:
            release(state)
        log.info("stopped in %.1f s", time.monotonic() - stopping)


def _drain(state: StateDir, app: str) -> None:
    """New requests are told to come back (503 + Retry-After); those in flight finish; then
    HAProxy stops accepting, so Serve's shutdown cuts nothing off (launcher.drain)."""
    log.info("stopping: new requests get 503 until the ones in flight are answered")
    clear_reports(state.drain_reports)
    DrainFlag(state.drain_flag).raise_flag()
    flagged = time.monotonic()
    if not wait_until_idle(state.drain_reports, api_replicas(app), DRAIN_TIMEOUT_S):
        log.warning("requests still in flight after %.0f s; stopping anyway", DRAIN_TIMEOUT_S)
    soft_stop(recorded_haproxies(state), SOFT_STOP_TIMEOUT_S)
    log.info("requests answered and HAProxy closed (%.1f s after the flag); stopping Ray Serve",
             time.monotonic() - flagged)


def _shut_down_serve(budget_s: float) -> None:
    """Serve's own shutdown (its replicas, already idle, and its controller), at most `budget_s`:
    on a loaded machine it can take longer than the stop's budget allows, and the local Ray's end
    (`ray.shutdown`, next) stops whatever it left running, so it is not waited for beyond that."""
    from ray import serve

    started = time.monotonic()
    worker = threading.Thread(target=serve.shutdown, name="serve-shutdown", daemon=True)
    worker.start()
    worker.join(max(1.0, budget_s))
    if worker.is_alive():
        log.warning("Serve's shutdown still running after %.1f s; ending the local Ray", time.monotonic() - started)
    else:
        log.info("Ray Serve stopped in %.1f s", time.monotonic() - started)


def api_replicas(app: str) -> int:
    """How many API replicas Serve runs now: each reports when it has no request in flight."""
    from ray import serve

    try:
        deployment = serve.status().applications[app].deployments.get("Api")
    except Exception as exc:  # the controller gone: nothing left to drain through it
        log.warning("cannot ask Serve for its API replicas (%s); not waiting for them", exc)
        return 0
    return int(deployment.replica_states.get("RUNNING", 0)) if deployment else 0


if __name__ == "__main__":
    main()
