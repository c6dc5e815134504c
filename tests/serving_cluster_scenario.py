"""Serving on several nodes, for tests/test_cluster.py (a separate process: one process joins one
Ray cluster). A head (no CPUs for replicas: the Serve controller and HAProxy) and two worker
nodes, each its own raylet; the app deployed as `python -m serve_app` does it (HAProxy, its
settings from launcher.ray_env), the replicas spread over the workers. Under 100 concurrent
callers the worker holding most replicas is killed; a signed-in user's quota is spent across the
kill. Prints one JSON line with what happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CALLERS, FORECASTERS = 100, 10  # of the callers, those that compute a forecast each time (/ml/predict)
QUOTA = 40


def _world(root: Path, database_url: str) -> dict[str, str]:
    from jobs import weekly_training

    env = {"MARKET_SOURCE": "synthetic", "DATA_DIR": str(root / "data"), "MODEL_DIR": str(root / "models"),
           "DATABASE_URL": database_url, "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
           "QUOTA_ANONYMOUS": "1000000", "QUOTA_FREE": str(QUOTA), "EMAIL_OUTBOX": str(root / "outbox"),
           "SERVE_STATE_DIR": str(root / "run"), "RAY_AUTH_MODE": "disabled"}
    os.environ.update(env)
    weekly_training.main(["--top", "6", "--timeframes", "1d", "--no-ray", "--n-estimators", "30",
                          "--max-depth", "4", "--origins", "60", "--model", "xgboost"])
    return env


def _replica_nodes() -> dict[str, Counter[str]]:
    """Each node's Serve replicas by deployment (from the GCS: the cluster runs no dashboard)."""
    from ray._private import state

    nodes: dict[str, Counter[str]] = {}
    for actor in state.actors().values():
        name = actor.get("ActorClassName", "")
        if actor.get("State") == "ALIVE" and name.startswith("ServeReplica:cryptocast:"):
            nodes.setdefault(actor["Address"]["NodeID"], Counter())[name.rsplit(":", 1)[1]] += 1
    return nodes


def _kill_node(node: Any) -> float:
    """SIGKILL a node's raylet and every process on it at one moment, as a machine lost would
    be (the raylet alone dying leaves its workers serving for most of a second). Returns when."""
    import psutil

    raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
    doomed = [raylet, *raylet.children(recursive=True)]
    for proc in doomed:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    return time.monotonic()


def _signed_in(base: str, outbox: Path) -> str:
    import httpx

    from tests.email_outbox import emailed_token

    email = f"c{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=base, timeout=60) as http:
        assert http.post("/api/auth/register", json={"email": email, "password": "a long password"}).status_code == 201
        token = http.post("/api/auth/login", json={"email": email, "password": "a long password"}).json()["token"]
        assert http.post("/api/auth/verify", json={"token": emailed_token(outbox, email, "verify")}).status_code == 200
    return str(token)


@dataclass
class Run:
    """What the callers saw: (sent, answered, outcome: "200" or what failed, path) per request,
    and (status, X-RateLimit-Remaining) per call of the user spending the quota."""

    base: str
    ticker: str
    token: str
    outcomes: list[tuple[float, float, str, str]] = field(default_factory=list)
    quota_answers: list[tuple[int, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def call(self, i: int) -> None:
        import httpx

        path = "/ml/predict" if i < FORECASTERS else "/api/predictions/generate"
        with httpx.Client(base_url=self.base, timeout=60) as http:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    r = http.post(path, json={"symbol": self.ticker, "timeframe": "1d", "num_steps": 5})
                    code = "200" if r.status_code == 200 else f"{r.status_code} {r.json().get('error', {}).get('code')}"
                    self.outcomes.append((sent, time.monotonic(), code, path))
                except httpx.HTTPError as exc:
                    self.outcomes.append((sent, time.monotonic(), type(exc).__name__, path))

    def spend_quota(self) -> None:
        """One call a quarter second, across the kill, past the quota."""
        import httpx

        with httpx.Client(base_url=self.base, timeout=60) as http:
            for _ in range(QUOTA + 10):
                try:
                    r = http.post("/api/predictions/generate", headers={"Authorization": f"Bearer {self.token}"},
                                  json={"symbol": self.ticker, "timeframe": "1d", "num_steps": 2})
                    self.quota_answers.append((r.status_code, r.headers.get("X-RateLimit-Remaining")))
                except httpx.HTTPError:
                    self.quota_answers.append((0, None))
                time.sleep(0.25)

    def latencies(self, path: str, since: float, until: float) -> list[float]:
        return sorted(a - s for s, a, _, p in self.outcomes if since < s < until and p == path)


def _recovered(victim_id: str, replicas: int, deadline: float) -> float | None:
    """When every replica runs again off the killed node (live in the GCS there, and each of
    Serve's replicas RUNNING), polled until `deadline`; None if not by then."""
    from ray import serve

    from serve_app.deployments import APP_NAME

    while time.monotonic() < deadline:
        alive = sum(sum(c.values()) for node, c in _replica_nodes().items() if node != victim_id)
        with contextlib.suppress(Exception):  # the controller busy with the lost node: ask again
            deployments = serve.status().applications[APP_NAME].deployments.values()
            if alive >= replicas and all(set(d.replica_states) <= {"RUNNING"} for d in deployments):
                return time.monotonic()
        time.sleep(0.5)
    return None


def _load_and_kill(run: Run, cluster: Any, victim: Any, replicas: int) -> tuple[float, float | None]:
    """100 callers (and the quota's) for 12 s, the node killed, then on until 8 s after every
    replica runs again (at least 25 s, at most 68 s; they run again about 33 s after the kill on
    this 2-core machine). Returns when the kill was and when the replicas all ran again (None: not
    within 60 s)."""
    with ThreadPoolExecutor(CALLERS + 1) as pool:
        for i in range(CALLERS):
            pool.submit(run.call, i)
        quota = pool.submit(run.spend_quota)
        time.sleep(12)
        killed = _kill_node(victim)
        cluster.remove_node(victim, allow_graceful=False)
        recovered = _recovered(victim.node_id, replicas, killed + 60)
        time.sleep(max(0.0, max(killed + 25, (recovered or killed) + 8) - time.monotonic()))
        run.stop.set()
        quota.result()
    return killed, recovered


def _summary(run: Run, killed: float, recovered: float | None, quota_counted: int) -> dict[str, object]:
    answered = sorted(a for _, a, _, _ in run.outcomes)
    statuses = [s for s, _ in run.quota_answers]
    predict_before = run.latencies("/ml/predict", killed - 6, killed - 1) or [float("nan")]
    generate_before = run.latencies("/api/predictions/generate", killed - 6, killed - 1) or [float("nan")]
    generate_after = run.latencies("/api/predictions/generate", killed, float("inf")) or [float("nan")]
    generate_recovered = run.latencies("/api/predictions/generate", recovered or float("inf"), float("inf")) \
        or [float("nan")]
    after = [(a - s, s - killed, p) for s, a, _, p in run.outcomes if s > killed]
    return {
        "requests": len(run.outcomes),
        "failed": [(round(s - killed, 2), round(a - killed, 2), f"{o} {p}") for s, a, o, p in run.outcomes if o != "200"],
        "in_flight_at_kill": sum(1 for s, a, _, _ in run.outcomes if s < killed < a),
        "longest_gap_s": round(max((b - a for a, b in zip(answered, answered[1:], strict=False) if a > killed - 1),
                                   default=0.0), 2),
        "predict_before_kill_p50_max_s": [round(predict_before[len(predict_before) // 2], 2), round(predict_before[-1], 2)],
        "generate_before_kill_max_s": round(max(generate_before), 2),  # nan: none answered then
        "generate_after_kill_max_s": round(max(generate_after), 2),  # recovery included
        "recovered_after_s": None if recovered is None else round(recovered - killed, 2),
        "generate_recovered_max_s": round(max(generate_recovered), 2),  # sent once every replica ran again
        "generate_recovered": len(generate_recovered),
        "slowest_after_kill": [(round(w, 2), round(t, 2), p) for w, t, p in sorted(after, reverse=True)[:5]],
        "quota_200": statuses.count(200), "quota_429": statuses.count(429),
        "quota_other": len(statuses) - statuses.count(200) - statuses.count(429),
        "quota_remaining_seen": sorted(int(r) for s, r in run.quota_answers if s == 200 and r is not None),
        "quota_counted": quota_counted,
    }


def main(workdir: str, database_url: str, port: int) -> None:
    root = Path(workdir)
    _world(root, database_url)
    from config import environ_snapshot, load_settings
    from launcher.leftovers import claim, release
    from launcher.ray_env import apply_ray_serve_env, listener_env

    os.environ["SERVE_PORT"] = str(port)
    state = claim(load_settings(os.environ))
    for name, value in listener_env(load_settings(os.environ), state.haproxy_dir).items():
        os.environ.setdefault(name, value)
    apply_ray_serve_env()  # before the raylets start: they pass it on to Serve's processes
    import httpx
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster

    from serve_app.deployments import APP_NAME, build_app

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=3), cluster.add_node(num_cpus=3)]
    ray.init(address=cluster.address, log_to_driver=False)
    result: dict[str, object] = {}
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port, "location": "HeadOnly"})
        serve.run(build_app(environ=environ_snapshot()), name=APP_NAME, route_prefix="/")
        base = f"http://127.0.0.1:{port}"
        placement = _replica_nodes()
        ticker = httpx.get(f"{base}/api/symbols/search", params={"q": "a", "limit": 1}, timeout=30).json()["results"][0]["ticker"]
        run = Run(base, ticker, _signed_in(base, root / "outbox"))
        for path in ("/api/predictions/generate", "/ml/predict"):  # the cache warm: no herd at the start
            httpx.post(f"{base}{path}", json={"symbol": ticker, "timeframe": "1d", "num_steps": 5}, timeout=60)
        victim_id = max(placement, key=lambda n: sum(placement[n].values()))
        killed, recovered = _load_and_kill(run, cluster, next(w for w in workers if w.node_id == victim_id),
                                           sum(sum(c.values()) for c in placement.values()))
        usage = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {run.token}"}, timeout=60).json()["usage"]
        result = {"placement": {node[:8]: dict(c) for node, c in placement.items()}, "killed_node": victim_id[:8],
                  "killed_replicas": dict(placement[victim_id]), **_summary(run, killed, recovered, usage["api_calls"]),
                  "placement_after": {node[:8]: dict(c) for node, c in _replica_nodes().items()}}
    except Exception:
        result = {"error": traceback.format_exc()}  # the test shows it: stderr holds Ray's noise too
        raise
    finally:
        print("RESULT " + json.dumps(result), flush=True)
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()
        release(state)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
