"""Ray Train and Ray tasks, for every model that fits on the cluster (the recursive and direct
XGBoost models on Ray Data shards, the LSTM on torch workers, the forest in one task).

A model module writes its per-worker loop against the few calls here (which worker this is,
its shard, the last checkpoint to resume from, a report that carries a checkpoint) and names the
trainer; the layout (workers, CPUs, storage, restarts) comes from `engine.layout`. The model
modules never import Ray, so the same loop also runs as the plain fit in one process.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa

from engine import progress
from engine.layout import Placement, RunOptions, largest_node_cpus, run_config, worker_layout

T = TypeVar("T")


# -- inside a worker ----------------------------------------------------------------------------
def rank() -> int:
    import ray.train

    return int(ray.train.get_context().get_world_rank())


def world_size() -> int:
    import ray.train

    return int(ray.train.get_context().get_world_size())


def shard(name: str) -> pa.Table:
    """This worker's share of the dataset `name`, as one Arrow table (Ray Data hands rows over in
    no fixed order; no pandas copy: the caller takes the columns it needs)."""
    import ray.train

    blocks = list(ray.train.get_dataset_shard(name).iter_batches(batch_size=None, batch_format="pyarrow"))
    return pa.concat_tables(blocks, promote_options="default") if blocks else pa.table({})


def shared(ref: Any) -> Any:
    """An object the driver put in the object store (`fit_torch(..., shared=...)`)."""
    import ray

    return ray.get(ref)


def resumed(load: Callable[[Path], T]) -> T | None:
    """The state of the last checkpoint, read by `load` from its folder; None on a first attempt
    (a restarted worker group resumes instead of starting over)."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return load(Path(folder))


def report(metrics: dict[str, Any], save: Callable[[Path], None] | None = None) -> None:
    """Report a round; worker 0 attaches a checkpoint that `save` writes into a folder (every
    worker holds the same model, so one copy is enough)."""
    import ray.train

    if save is not None and rank() == 0:
        with tempfile.TemporaryDirectory() as folder:
            save(Path(folder))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
    else:
        ray.train.report(metrics)


def prepared_torch_model(net: Any) -> Any:
    """The network wrapped for data-parallel training across the workers (CPU: no device move)."""
    from ray.train.torch import prepare_model

    return prepare_model(net, move_to_device=False)


# -- progress from the workers to the driver's stage line ---------------------------------------
class _ProgressSink:
    """An actor holding the latest progress a worker reported (rank 0: every worker has as far to go)."""

    def __init__(self) -> None:
        self.last: tuple[int, int, str] | None = None

    def update(self, done: int, total: int, unit: str) -> None:
        self.last = (done, total, unit)

    def latest(self) -> tuple[int, int, str] | None:
        return self.last


class _WithProgress:
    """The per-worker loop with `engine.progress.report` forwarded to the driver's sink."""

    def __init__(self, loop: Callable[[dict[str, Any]], None], sink: Any) -> None:
        self.loop, self.sink = loop, sink

    def __call__(self, config: dict[str, Any]) -> None:
        if self.sink is None or rank() != 0:
            return self.loop(config)
        with progress.reporting(lambda done, total, unit: self.sink.update.remote(done, total, unit)):
            return self.loop(config)


@contextmanager
def _progress_sink(poll_s: float = 1.0) -> Iterator[Any]:
    """A sink the workers report to, polled into the reporter of the stage running here; None
    (and no actor) when no stage is reporting."""
    reporter = progress.current()
    if reporter is None:
        yield None
        return
    import ray

    sink = ray.remote(num_cpus=0)(_ProgressSink).remote()
    stop = threading.Event()

    def poll() -> None:
        shown = None
        while not stop.wait(poll_s):
            try:
                latest = ray.get(sink.latest.remote(), timeout=10)
            except Exception:  # progress is best effort; the fit's own errors surface in fit()
                continue
            if latest is not None and latest != shown:
                reporter(*latest)
                shown = latest

    thread = threading.Thread(target=poll, name="train-progress", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        stop.set()
        thread.join()
        ray.kill(sink)


# -- the driver ---------------------------------------------------------------------------------
def dataset(frame: pd.DataFrame) -> Any:
    """A Ray Dataset of rows already in this process (the direct models' rows, a shuffled control)."""
    import ray.data

    return ray.data.from_pandas(frame)


def _finish(result: Any, load: Callable[[Path], T], what: str) -> tuple[T, dict[str, Any]]:
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train finished the {what} without a checkpoint: {result.error}")
    with result.checkpoint.as_directory() as folder:
        state = load(Path(folder))
    return state, dict(result.metrics or {})


def fit_xgboost(loop: Callable[[dict[str, Any]], None], config: dict[str, Any], datasets: dict[str, Any],
                run: RunOptions, load: Callable[[Path], T], what: str) -> tuple[T, dict[str, Any]]:
    """Run `loop` on XGBoost workers over Ray Data `datasets`; the last checkpoint's state (read
    by `load`) and the last report's metrics. `config` gets `nthread`: each worker's CPUs."""
    from ray.train import ScalingConfig
    from ray.train.xgboost import XGBoostTrainer

    workers, per_worker = worker_layout(run.train_workers)
    with _progress_sink() as sink:
        trainer = XGBoostTrainer(_WithProgress(loop, sink), train_loop_config={**config, "nthread": per_worker},
                                 scaling_config=ScalingConfig(num_workers=workers,
                                                              resources_per_worker={"CPU": per_worker}),
                                 run_config=run_config(run.storage_path, run.max_failures), datasets=datasets)
        return _finish(trainer.fit(), load, what)


def fit_torch(loop: Callable[[dict[str, Any]], None], config: dict[str, Any], shared_data: Any,
              run: RunOptions, load: Callable[[Path], T], what: str) -> tuple[T, dict[str, Any]]:
    """Run `loop` on torch CPU workers; `shared_data` goes to the object store once and reaches
    every worker as `config["data"]` (read it with `shared`)."""
    import ray
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    workers, per_worker = worker_layout(run.train_workers)
    with _progress_sink() as sink:
        trainer = TorchTrainer(_WithProgress(loop, sink),
                               train_loop_config={**config, "data": ray.put(shared_data), "nthread": per_worker},
                               scaling_config=ScalingConfig(num_workers=workers, use_gpu=False,
                                                            resources_per_worker={"CPU": per_worker}),
                               run_config=run_config(run.storage_path, run.max_failures))
        return _finish(trainer.fit(), load, what)


def call(run: RunOptions, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` where `run` fits a model that needs no worker group: in one Ray task on Ray
    (which passes the CPUs it holds as a last argument, `run_task`), else here, with `fn`'s own
    default for its threads."""
    return fit_where(run, fn, None, *args, candles=0)


def fit_where(run: RunOptions, here: Callable[..., T], group: Callable[[], T] | None, *args: Any,
              candles: int | None = None) -> T:
    """A fit where `run.placement(candles)` puts it: `here(*args)` in this process or as one Ray
    task (`run_task`), `group()` on a Ray Train worker group. The one place a fit picks Ray or not;
    the models give the bodies."""
    where = run.placement(candles)
    if where is Placement.GROUP and group is not None:
        return group()
    if where is Placement.HERE:
        return here(*args)
    return run_task(here, *args)


def run_task(fit: Callable[..., T], *args: Any) -> T:
    """`fit(*args, cpus)` as one Ray task with as many CPUs as one node can give it (a model that
    parallelises over threads, not workers; a fit too small for a worker group), its progress
    forwarded to the stage running here."""
    import ray

    cpus = min(max(1, int(ray.available_resources().get("CPU", 1))), largest_node_cpus())
    with _progress_sink() as sink:
        return ray.get(ray.remote(num_cpus=cpus)(_task_with_progress).remote(fit, sink, *args, cpus))


def _task_with_progress(fit: Callable[..., T], sink: Any, *args: Any) -> T:
    """`fit(*args)` with `engine.progress.report` forwarded to the driver's sink."""
    if sink is None:
        return fit(*args)
    with progress.reporting(lambda done, total, unit: sink.update.remote(done, total, unit)):
        return fit(*args)
