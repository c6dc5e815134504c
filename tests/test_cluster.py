"""Several Ray nodes on one machine: a weekly job across them survives losing the node that
trains (Ray Train's FailureConfig restarts the worker elsewhere, which resumes from its checkpoint)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_weekly_job_survives_the_training_node_being_killed(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tests.cluster_scenario", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["nodes_before"] == 3
    assert result["killed"], f"no training node was killed: {result}\n{proc.stdout[-3000:]}"
    assert result["nodes_after"] == 2
    assert result["status"] == "ok" and result["active_version"] == "v1.0", proc.stdout[-4000:]
