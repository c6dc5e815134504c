"""Training-job metrics through Ray's metrics (Prometheus, the Ray dashboard, Grafana).

- `cryptocast_training_runs_total` (counter; job, timeframe, model, outcome = activated |
  registered | skipped | failed): one per timeframe per run;
- `cryptocast_training_stage_seconds` (gauge; job, timeframe, stage): the last run's duration of
  each stage (sync, rank, update, candles, fit, calibrate, evaluate, register, ...);
- `cryptocast_training_job_seconds` (gauge; job, status = ok | failed): the last run's wall time;
- `cryptocast_training_last_success_timestamp_seconds` (gauge; job, timeframe): Unix time of the
  last activated or registered model, to alert on a weekly job that silently stopped.

Prometheus sees them with Ray's `ray_` prefix. Outside Ray (`--no-ray`) the calls do nothing.
The job is a short-lived driver: before it exits it waits one metrics report interval so that
the node's metrics agent has collected the last values.
"""

from __future__ import annotations

import os
import time
from typing import Any


class TrainingMetrics:
    def __init__(self, job: str) -> None:
        self.job = job
        self._ray: dict[str, Any] = {}
        try:
            import ray

            if not ray.is_initialized():
                return
            from ray.util.metrics import Counter, Gauge

            self._ray = {
                "runs": Counter("cryptocast_training_runs_total", "trainings per timeframe by outcome",
                                tag_keys=("job", "timeframe", "model", "outcome")),
                "stage": Gauge("cryptocast_training_stage_seconds", "duration of the last run's stages",
                               tag_keys=("job", "timeframe", "stage")),
                "job": Gauge("cryptocast_training_job_seconds", "wall time of the last run",
                             tag_keys=("job", "status")),
                "success": Gauge("cryptocast_training_last_success_timestamp_seconds",
                                 "Unix time of the last successful training", tag_keys=("job", "timeframe")),
            }
        except Exception:
            self._ray = {}

    def stages(self, scope: str, seconds: dict[str, float]) -> None:
        if self._ray:
            for stage, value in seconds.items():
                self._ray["stage"].set(float(value), tags={"job": self.job, "timeframe": scope, "stage": stage})

    def outcome(self, timeframe: str, model: str, outcome: str) -> None:
        if self._ray:
            self._ray["runs"].inc(tags={"job": self.job, "timeframe": timeframe, "model": model, "outcome": outcome})
            if outcome in ("activated", "registered"):
                self._ray["success"].set(time.time(), tags={"job": self.job, "timeframe": timeframe})

    def finished(self, seconds: float, ok: bool) -> None:
        if not self._ray:
            return
        self._ray["job"].set(float(seconds), tags={"job": self.job, "status": "ok" if ok else "failed"})
        interval_s = int(os.environ.get("RAY_metrics_report_interval_ms", "10000")) / 1000
        time.sleep(interval_s + 1.0)
