"""A multi-node run on one machine, for tests/test_cluster.py (run as a separate process, since a
process joins one Ray cluster only).

Three nodes, each its own raylet process with its own resources: a 1-CPU head and two 2-CPU
workers. A small weekly job runs across them; once Ray Train has written its first checkpoint,
the node that hosts the training worker is killed. Ray Train restarts the worker on the other
node, it resumes from the checkpoint, and the job must still register and activate a model.
Prints one JSON line with what happened.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path


def main(workdir: str) -> None:
    import ray
    from ray._private.state import available_resources_per_node
    from ray.cluster_utils import Cluster

    root = Path(workdir)
    env = {"MARKET_SOURCE": "synthetic", "DATA_DIR": str(root / "data"), "MODEL_DIR": str(root / "models"),
           "DATABASE_URL": f"sqlite:///{root / 'app.db'}", "RAY_AUTH_MODE": "disabled"}
    os.environ.update(env)
    # a slow learning rate keeps early stopping away long enough for a checkpoint to exist
    tuning = root / "models" / "tuning"
    tuning.mkdir(parents=True)
    (tuning / "1d_best.json").write_text(json.dumps({"params": {"n_estimators": 400, "learning_rate": 0.01,
                                                                 "max_depth": 4}}))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=2), cluster.add_node(num_cpus=2)]
    ray.init(address=cluster.address, log_to_driver=False)
    killed: dict[str, str] = {}

    def kill_training_node() -> None:
        deadline = time.time() + 600
        while time.time() < deadline and not killed:
            checkpoints = list((root / "models" / ".ray_train").glob("*/checkpoint_*"))
            if checkpoints:
                available = available_resources_per_node()
                for node in workers:
                    # Ray leaves a fully used resource out of the map: the trainer holds both CPUs
                    if node.node_id in available and available[node.node_id].get("CPU", 0) < 2:
                        cluster.remove_node(node, allow_graceful=False)
                        killed["node"] = node.node_id
                        killed["after_checkpoints"] = str(len(checkpoints))
                        return
            time.sleep(0.2)

    watcher = threading.Thread(target=kill_training_node, daemon=True)
    watcher.start()
    nodes_before = len([n for n in ray.nodes() if n["Alive"]])
    from jobs import weekly_training

    status = "ok"
    try:
        weekly_training.main(["--top", "6", "--timeframes", "1d", "--as-of", "2025-10-01", "--train-workers", "1",
                              "--one-task-below", "0",  # this test is about Ray Train's restarts
                              "--max-failures", "2", "--origins", "60", "--model", "xgboost"])
    except SystemExit as exc:
        status = f"exit {exc.code}"
    from storage.db import make_engine
    from storage.registry import ModelRegistry

    registry = ModelRegistry(make_engine(env["DATABASE_URL"]), env["MODEL_DIR"])
    active = registry.active("1d")
    print("RESULT " + json.dumps({
        "status": status, "nodes_before": nodes_before, "killed": killed,
        "nodes_after": len([n for n in ray.nodes() if n["Alive"]]),
        "active_version": None if active is None else active.version,
    }), flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
