"""Serving on several nodes, for tests/test_cluster.py (a separate process: one process joins one
Ray cluster). A head (no CPUs for replicas: the Serve controller and HAProxy) and two worker
nodes, each its own raylet; the app deployed as `python -m serve_app` does it (HAProxy, its
settings from serve_app.ray_env), the replicas spread over the workers. Under 100 concurrent
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
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
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

    from tests.test_serving import _emailed_token

    email = f"c{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=base, timeout=60) as http:
        assert http.post("/api/auth/register", json={"email": email, "password": "a long password"}).status_code == 201
        token = http.post("/api/auth/login", json={"email": email, "password": "a long password"}).json()["token"]
        assert http.post("/api/auth/verify", json={"token": _emailed_token(outbox, email, "verify")}).status_code == 200
    return str(token)


def main(workdir: str, database_url: str, port: int) -> None:
    root = Path(workdir)
    _world(root, database_url)
    from config import environ_snapshot, load_settings
    from serve_app.leftovers import claim, release
    from serve_app.ray_env import apply_ray_serve_env, listener_env

    settings = load_settings(os.environ | {"SERVE_PORT": str(port)})
    os.environ["SERVE_PORT"] = str(port)
    state = claim(settings)
    for name, value in listener_env(settings, state.haproxy_dir).items():
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
        result["placement"] = {node[:8]: dict(c) for node, c in placement.items()}
        ticker = httpx.get(f"{base}/api/symbols/search", params={"q": "a", "limit": 1}, timeout=30).json()["results"][0]["ticker"]
        token = _signed_in(base, root / "outbox")
        outcomes: list[tuple[float, float, str]] = []  # (sent, answered, outcome: "200", or what failed)
        paths: dict[tuple[float, float], str] = {}
        quota_answers: list[tuple[float, int, str | None]] = []
        stop = threading.Event()

        def caller(i: int) -> None:
            path = "/ml/predict" if i < FORECASTERS else "/api/predictions/generate"
            with httpx.Client(base_url=base, timeout=60) as http:
                while not stop.is_set():
                    sent = time.monotonic()
                    try:
                        r = http.post(path, json={"symbol": ticker, "timeframe": "1d", "num_steps": 5})
                        code = "" if r.status_code == 200 else f" {r.json().get('error', {}).get('code')}"
                        outcomes.append((sent, time.monotonic(), "200" if r.status_code == 200
                                         else f"{r.status_code}{code} {path}"[:60]))
                        paths[outcomes[-1][:2]] = path
                    except httpx.HTTPError as exc:
                        outcomes.append((sent, time.monotonic(), type(exc).__name__))

        def spend_quota() -> None:  # one call a quarter second, across the kill, past the quota
            with httpx.Client(base_url=base, timeout=60) as http:
                for _ in range(QUOTA + 10):
                    try:
                        r = http.post("/api/predictions/generate", headers={"Authorization": f"Bearer {token}"},
                                      json={"symbol": ticker, "timeframe": "1d", "num_steps": 2})
                        quota_answers.append((time.monotonic(), r.status_code, r.headers.get("X-RateLimit-Remaining")))
                    except httpx.HTTPError:
                        quota_answers.append((time.monotonic(), 0, None))
                    time.sleep(0.25)

        for path in ("/api/predictions/generate", "/ml/predict"):  # the cache warm: no herd at the start
            httpx.post(f"{base}{path}", json={"symbol": ticker, "timeframe": "1d", "num_steps": 5}, timeout=60)
        victim_id = max(placement, key=lambda n: sum(placement[n].values()))
        victim = next(w for w in workers if w.node_id == victim_id)
        with ThreadPoolExecutor(CALLERS + 1) as pool:
            for i in range(CALLERS):
                pool.submit(caller, i)
            quota = pool.submit(spend_quota)
            time.sleep(12)
            killed = _kill_node(victim)
            cluster.remove_node(victim, allow_graceful=False)
            time.sleep(25)
            stop.set()
            quota.result()
        answered = sorted(a for _, a, _ in outcomes)
        gaps = [b - a for a, b in zip(answered, answered[1:], strict=False) if a > killed - 1]
        failed = [(round(s - killed, 2), round(a - killed, 2), o) for s, a, o in outcomes if o != "200"]
        after = [a - s for s, a, o in outcomes if s > killed]
        slowest = sorted(((round(a - s, 2), round(s - killed, 2), paths.get((s, a), "")) for s, a, o in outcomes
                          if s > killed), reverse=True)[:5]
        statuses = [s for _, s, _ in quota_answers]
        remaining = sorted(int(r) for _, s, r in quota_answers if s == 200 and r is not None)
        with httpx.Client(base_url=base, timeout=60) as http:
            usage = http.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()["usage"]
        before = sorted(a - s for s, a, o in outcomes if killed - 6 < s < killed - 1 and paths.get((s, a)) == "/ml/predict")
        result["predict_before_kill_p50_max_s"] = [round(before[len(before) // 2], 2), round(before[-1], 2)]
        for name, window in (("before", lambda sent: killed - 6 < sent < killed - 1), ("after", lambda sent: sent > killed)):
            result[f"generate_{name}_kill_max_s"] = round(max(
                (a - s for s, a, o in outcomes if window(s) and paths.get((s, a)) == "/api/predictions/generate"),
                default=0.0), 2)
        result.update({
            "requests": len(outcomes), "killed_node": victim_id[:8], "killed_replicas": dict(placement[victim_id]),
            "failed": failed, "in_flight_at_kill": sum(1 for s, a, _ in outcomes if s < killed < a),
            "longest_gap_s": round(max(gaps, default=0.0), 2),
            "slowest_sent_after_kill_s": round(max(after, default=0.0), 2), "slowest_after_kill": slowest,
            "quota_200": statuses.count(200), "quota_429": statuses.count(429),
            "quota_other": len(statuses) - statuses.count(200) - statuses.count(429),
            "quota_remaining_seen": remaining, "quota_counted": usage["api_calls"],
            "placement_after": {node[:8]: dict(c) for node, c in _replica_nodes().items()},
        })
    finally:
        print("RESULT " + json.dumps(result), flush=True)
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()
        release(state)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
