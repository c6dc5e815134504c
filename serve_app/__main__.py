"""`python -m serve_app [--address ADDR]`: run the HTTP service in the foreground on
SERVE_HOST:SERVE_PORT. Ray is joined only on purpose: `--address` or RAY_ADDRESS names a cluster;
otherwise a local Ray of its own starts (never one a past `ray start` left recorded in /tmp/ray).
The replicas get this process's settings, and its terminal shows their request log lines.
Ctrl-C stops it."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from config import environ_snapshot, mask_url, settings_or_exit
from serve_app.leftovers import claim, release
from serve_app.ray_env import apply_ray_serve_env, listener_env
from storage.db import database_or_exit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", help="a Ray cluster to deploy to (default: RAY_ADDRESS, else a local Ray)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_or_exit()
    database_or_exit(settings.database_url)
    address = args.address or os.environ.get("RAY_ADDRESS") or "local"
    state = None
    if address == "local":  # a cluster's processes took theirs from its `ray start`
        state = claim(settings)  # what a crashed run on this port left behind, ended; the ports free
        for name, value in {**listener_env(settings), "CRYPTOCAST_HAPROXY_PIDDIR": str(state.haproxy_dir)}.items():
            os.environ.setdefault(name, value)
        apply_ray_serve_env()  # before Ray is imported: Serve reads them at import
    import ray
    from ray import serve

    from serve_app.deployments import build_app

    ray.init(address=address, configure_logging=False, log_to_driver=True,
             include_dashboard=None if address != "local" else False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:  # Ctrl-C may come while the replicas are still starting: shut down cleanly either way
        serve.start(http_options={"host": settings.serve_host, "port": settings.serve_port})
        serve.run(build_app(environ=environ_snapshot()), name="cryptocast", route_prefix="/")
        print(f"serving on http://{settings.serve_host}:{settings.serve_port} (database "
              f"{mask_url(settings.database_url)}, Ray {address}; Ctrl-C stops)", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()
        if state is not None:
            release(state)


if __name__ == "__main__":
    main()
