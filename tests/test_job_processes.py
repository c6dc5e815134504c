"""No process outlives a job: the weekly training (fitting on Ray Train's worker group, whose
TrainController once outlived a run by half an hour) and the backtest, each run as an operator
runs it (`python -m jobs.…` with a local Ray of its own), leave the machine as they found it.

Every process a job starts inherits a marker in its environment (Ray's workers inherit the
raylet's, which inherits the job's), so one that escaped the job's process tree (a double fork,
a reparented orphan) is found as well."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.conftest import DAILY_DATA, process_running

ROOT = Path(__file__).resolve().parents[1]
MARK = "CRYPTOCAST_TEST_JOB_MARK"


def _marked(mark: str) -> dict[int, str]:
    found = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.environ().get(MARK) == mark and proc.status() != psutil.STATUS_ZOMBIE:
                found[proc.pid] = " ".join(proc.info["cmdline"] or [])[:120]
        except (psutil.Error, OSError):
            continue
    return found


def _run_job(args: list[str], env: dict[str, str], log: Path,
             kill_when: str | None = None) -> tuple[int, dict[int, str], dict[int, str]]:
    """Runs `python -m <args>`; returns its exit status, the processes seen carrying its mark while
    it ran, and those still running 5 s after it exited. With `kill_when`, SIGKILLs the job (the
    OOM killer) once a process whose command line holds that text has run for 2 s."""
    import signal

    mark = uuid.uuid4().hex
    full = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    full.update(env, **{MARK: mark, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"})
    seen: dict[int, str] = {}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", *args], cwd=log.parent, env=full, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 600
        while proc.poll() is None and time.time() < deadline:
            seen.update(_marked(mark))
            if kill_when and any(kill_when in cmd for cmd in seen.values()):
                time.sleep(2)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                break
            time.sleep(1)
        if proc.poll() is None:
            proc.kill()
            raise AssertionError(f"{args[0]} ran past 600 s\n{log.read_text()[-3000:]}")
    time.sleep(5)
    return proc.returncode, seen, _marked(mark)


@pytest.mark.slow
def test_the_weekly_job_on_ray_train_leaves_no_process(tmp_path: Path) -> None:
    env = {"MARKET_SOURCE": "synthetic", "DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(tmp_path / "models"),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}
    code, seen, left = _run_job(["jobs.weekly_training", "--top", "4", "--timeframes", "1d", "--as-of", "2025-10-01",
                                 "--n-estimators", "20", "--max-depth", "4", "--origins", "40", "--model", "xgboost",
                                 "--one-task-below", "0", "--train-workers", "1"], env, tmp_path / "weekly.log")
    text = (tmp_path / "weekly.log").read_text()
    assert code == 0, text[-3000:]
    assert "(on Ray Train)" in text, text[-3000:]  # the worker group, and its TrainController, ran
    assert any("TrainController" in cmd for cmd in seen.values()) or len(seen) > 5, seen  # Ray's processes were seen
    assert not left, f"processes the weekly job left behind: {left}"


@pytest.mark.slow
def test_a_weekly_job_killed_mid_fit_leaves_no_process_within_a_minute(tmp_path: Path) -> None:
    """SIGKILL of the job's process alone, while Ray Train fits: its local Ray notices and ends
    (measured: one worker outlives it by up to ~30 s)."""
    env = {"MARKET_SOURCE": "synthetic", "DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(tmp_path / "models"),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}
    code, seen, left = _run_job(["jobs.weekly_training", "--top", "4", "--timeframes", "1d", "--as-of", "2025-10-01",
                                 "--n-estimators", "300", "--max-depth", "6", "--origins", "40", "--model", "xgboost",
                                 "--one-task-below", "0", "--train-workers", "1"], env, tmp_path / "weekly.log",
                                kill_when="TrainController")
    assert code == -9, (tmp_path / "weekly.log").read_text()[-3000:]
    deadline = time.time() + 60
    while left and time.time() < deadline:
        time.sleep(2)
        left = {pid: cmd for pid, cmd in left.items() if process_running(pid)}
    assert not left, f"processes of the killed job still running a minute on: {left}"


@pytest.mark.slow
def test_the_backtest_on_ray_leaves_no_process(tmp_path: Path) -> None:
    env = {"MARKET_SOURCE": f"csv:{DAILY_DATA}", "DATA_DIR": str(tmp_path / "data"),
           "MODEL_DIR": str(tmp_path / "models"), "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}
    code, seen, left = _run_job(["jobs.backtest", "--timeframe", "1d", "--train-end", "2024-06-30", "--test-end",
                                 "2024-12-31", "--top", "4", "--json", str(tmp_path / "report.json"),
                                 "--max-origins", "60", "--model", "xgboost", "--n-estimators", "20"],
                                env, tmp_path / "backtest.log")
    assert code == 0, (tmp_path / "backtest.log").read_text()[-3000:]
    assert len(seen) > 3, seen  # a local Ray ran
    assert not left, f"processes the backtest left behind: {left}"
