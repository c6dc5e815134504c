"""A stop that lets the requests in flight finish. Serve's own shutdown kills HAProxy first
(SIGKILL), cutting off every request in flight. So on SIGTERM or Ctrl-C `python -m serve_app`
first raises a flag in its state directory: every API replica on the machine then answers new
requests 503 `stopping` with Retry-After (the `Shed` middleware); it waits until the requests
admitted before are answered, then has HAProxy stop accepting and finish its connections
(SIGUSR1, HAProxy's soft stop), and only then shuts Serve down. A file, not a message to each
replica: Serve has no call that reaches every replica of a deployment, and a replica reads the
flag with one stat at most every CHECK_S."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import psutil

CHECK_S = 0.1
RETRY_AFTER_S = 30  # a supervisor's restart of the service takes about a minute


class DrainFlag:
    """The flag at `path`: raised by the stopping service, read by its replicas."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._checked = float("-inf")
        self._raised = False

    def raise_flag(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{os.getpid()}\n")

    def lower(self) -> None:
        self.path.unlink(missing_ok=True)

    def __call__(self) -> bool:
        """Whether the service is stopping (once raised, it stays so for this replica)."""
        now = time.monotonic()
        if not self._raised and now - self._checked >= CHECK_S:
            self._checked = now
            self._raised = self.path.exists()
        return self._raised


def wait_until_idle(app: str, deployment: str, timeout_s: float, poll_s: float = 0.05) -> bool:
    """After the flag is raised: wait until no replica of `deployment` has a request in flight, so
    that Serve's shutdown (which stops HAProxy first) cuts none off; at most `timeout_s`. Once
    every replica has seen the flag, only a request admitted before it keeps a count above 0
    (the 503s take a millisecond), so one sample of 0 on each replica means they are done.
    Returns whether they were."""
    import ray
    from ray.serve._private.common import ReplicaID
    from ray.serve._private.constants import SERVE_NAMESPACE

    time.sleep(2 * CHECK_S)  # every replica reads the flag
    replicas = []
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == SERVE_NAMESPACE and ReplicaID.is_full_id_str(actor["name"]):
            replica = ReplicaID.from_full_id_str(actor["name"]).deployment_id
            if (replica.app_name, replica.name) == (app, deployment):
                replicas.append(ray.get_actor(actor["name"], namespace=SERVE_NAMESPACE))
    busy = replicas
    deadline = time.monotonic() + timeout_s
    while busy and time.monotonic() < deadline:
        counts = ray.get([replica.get_num_ongoing_requests.remote() for replica in busy], timeout=timeout_s)
        busy = [replica for replica, n in zip(busy, counts, strict=True) if n > 0]
        if busy:
            time.sleep(poll_s)
    return not busy


def soft_stop(haproxies: list[psutil.Process], timeout_s: float) -> None:
    """HAProxy stops listening and closes each connection after its answer (new callers are
    refused, never cut off mid-answer); waits for the processes to end, at most `timeout_s`."""
    for proc in haproxies:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGUSR1)
    psutil.wait_procs(haproxies, timeout=timeout_s)
