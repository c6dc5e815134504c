"""`python -m serve_app`: run the HTTP service in the foreground on a local Ray (or the cluster
in RAY_ADDRESS), on SERVE_HOST:SERVE_PORT. Ctrl-C stops it."""

from __future__ import annotations

import logging
import os
import signal
import threading

from config import settings_or_exit


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_or_exit()
    import ray
    from ray import serve

    from serve_app.deployments import build_app

    ray.init(address=os.environ.get("RAY_ADDRESS") or None, configure_logging=False, log_to_driver=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:  # Ctrl-C may come while the replicas are still starting: shut down cleanly either way
        serve.start(http_options={"host": settings.serve_host, "port": settings.serve_port})
        serve.run(build_app(), name="cryptocast", route_prefix="/")
        print(f"serving on http://{settings.serve_host}:{settings.serve_port} (Ctrl-C stops)", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
