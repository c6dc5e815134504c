"""How a fit is laid out on the Ray cluster: workers, CPUs per worker, and where Ray Train keeps
its checkpoints. Shared by the XGBoost and torch trainers and the random forest's task."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from storage.location import is_remote

# A fit of fewer candles than this runs as one Ray task (rows and boosting in one process on one
# node) instead of Ray Data tasks and a Ray Train worker group: their start-up is a fixed ~25-35 s
# per fit on two cores (bench.weekly_training: 1m's 1,700 rows took 31 s through Ray Train against
# 7.5 s in one process), while a fit this small gains nothing from spreading over nodes. Such a
# task is retried elsewhere if its node dies, but starts over: it has no checkpoints to resume.
ONE_TASK_BELOW = 200_000


@dataclass(frozen=True)
class RunOptions:
    """How a fit runs: on Ray (Ray Train workers, checkpoints under `storage_path`, restarts of a
    failed worker group; one Ray task below `one_task_below` candles) or, with `use_ray` off, as
    the plain loop in this process."""

    use_ray: bool = True
    storage_path: str | None = None
    train_workers: int | None = None
    max_failures: int = 0
    one_task_below: int = ONE_TASK_BELOW  # candles; see ONE_TASK_BELOW

    def placement(self, candles: int | None = None) -> Placement:
        """Where a fit of `candles` runs: the one place that is decided. Without `candles` (a fit
        whose first run always checkpoints: the direct models'), on a worker group wherever Ray is."""
        if not self.use_ray:
            return Placement.HERE
        if candles is not None and candles < self.one_task_below:
            return Placement.TASK
        return Placement.GROUP


class Placement(Enum):
    """Where a fit runs (`RunOptions.placement`)."""

    HERE = "in this process"
    TASK = "in one Ray task"
    GROUP = "on Ray Train"


@dataclass(frozen=True)
class Checkpoints:
    """How often a Ray Train fit checkpoints (rounds or epochs, the model's unit) so that a
    restarted worker group resumes; `fail_once_after` makes one worker fail once after that many,
    in the first attempt only (the fault-tolerance tests)."""

    every: int
    fail_once_after: int | None = None


def largest_node_cpus() -> int:
    import ray

    return max([int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")] or [1])


def worker_layout(num_workers: int | None = None) -> tuple[int, int]:
    """(workers, CPUs per worker): by default one worker per two CPUs (at least one), each using
    its CPUs as threads but never more than the largest node has."""
    import ray

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    workers = num_workers or max(1, cpus // 2)
    return workers, max(1, min(cpus // workers, largest_node_cpus()))


def ray_storage(storage: str) -> str:
    """Ray Train's storage_path: a URI as it is (shared by every node), a local path made absolute."""
    return storage if is_remote(storage) else str(Path(storage).resolve())


# Ray Train's controller polls its workers this often (its default, 2 s, is also how long every fit
# waits after its workers finished: measured 3-5 s of a 16 s trivial fit, ~1 s at 0.25 s). Read
# by the controller from the driver's environment when a fit starts; an operator's value wins.
HEALTH_CHECK_INTERVAL_S = "0.25"


def run_config(storage_path: str | None, max_failures: int) -> Any:
    """Checkpoints under `storage_path` (a temporary folder if none); `max_failures` restarts."""
    from ray.train import FailureConfig, RunConfig

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", HEALTH_CHECK_INTERVAL_S)
    storage = storage_path or tempfile.mkdtemp(prefix="ray-train-")
    return RunConfig(storage_path=ray_storage(storage), failure_config=FailureConfig(max_failures=max_failures))
