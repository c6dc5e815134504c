"""Run a command and measure its wall time and the peak memory of its whole process tree
(Ray's workers included, since a local Ray starts them under the driver)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import psutil


@dataclass
class Measurement:
    label: str
    seconds: float
    peak_rss_mib: float
    returncode: int
    output: str


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def run_measured(label: str, argv: list[str], env: dict[str, str] | None = None,
                 interval_s: float = 0.2) -> Measurement:
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    root = psutil.Process(proc.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(root))
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        print(output, file=sys.stderr)
    return Measurement(label, seconds, peak / 2**20, proc.returncode, output)


def print_table(rows: list[Measurement], extra: dict[str, str] | None = None) -> None:
    print(f"{'run':<44} {'wall s':>9} {'peak MiB':>10}  {'note'}")
    for row in rows:
        note = (extra or {}).get(row.label, "")
        print(f"{row.label:<44} {row.seconds:>9.1f} {row.peak_rss_mib:>10.0f}  {note}")
