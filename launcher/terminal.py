"""What `python -m serve_app` prints: the service's own lines (its address, one line per request
from the API replicas, our warnings and errors from any replica), not Ray's. Ray Serve's
controller, proxy, HAProxy-manager and replica-system lines stay in Ray's log files
(`<session>/logs/serve/`, the session being `/tmp/ray/session_latest` for a local Ray), the
raylet's in `<session>/logs/raylet.*`; `--ray-logs` prints them all as Ray does. No colour codes
unless the output is a terminal. A replica's side: `serve_app.replica_log`."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

from serve_app.replica_log import LINE_FORMAT

log = logging.getLogger(__name__)


def quiet_ray_env(out: TextIO = sys.stdout, environ: MutableMapping[str, str] = os.environ) -> None:
    """Before Ray is imported: Serve's own lines to its files only; every request line shown (Ray
    folds lines alike into one `[repeated 580x]`, coloured); Ray's prefixes uncoloured when `out`
    is not a terminal. An operator's own value wins."""
    environ.setdefault("RAY_SERVE_LOG_TO_STDERR", "0")
    environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not out.isatty():
        environ.setdefault("RAY_COLOR_PREFIX", "0")


def configure_driver(show_ray: bool) -> None:
    """This process's own logging: our lines at INFO, libraries' (Alembic's set-up, Ray's) only
    from WARNING unless `show_ray`."""
    logging.basicConfig(level=logging.INFO, format=LINE_FORMAT)
    if not show_ray:
        for name in ("alembic", "ray"):
            logging.getLogger(name).setLevel(logging.WARNING)


def forward_worker_lines(show_ray: bool) -> None:
    """After `ray.init`: print the replicas' lines as Ray does, but not the raylet's nor the
    cluster's error channel (both in Ray's log files): at every stop they report the Serve
    controller's own exit as a failed task. Ray prints both through `print_to_stdstream`, the
    error channel by its module name, so that is what is wrapped. Those are Ray's internals: a Ray
    without them leaves its lines as they are, and the service says so once and runs on."""
    if show_ray:
        return
    try:
        from ray._private import worker

        ray_print = worker.print_to_stdstream
        dispatcher = worker.global_worker_stdstream_dispatcher
        remove, add = dispatcher.remove_handler, dispatcher.add_handler
    except (ImportError, AttributeError) as exc:
        log.warning("Ray's own lines are printed too: this Ray prints its workers' lines otherwise (%s)", exc)
        return

    def print_lines(data: dict[str, Any], ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":
            ray_print(data, ignore_prefix)

    worker.print_to_stdstream = print_lines
    remove("ray_print_logs")
    add("ray_print_logs", functools.partial(print_lines, ignore_prefix=False))
