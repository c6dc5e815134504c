"""Run a command and measure its wall time and the peak memory of its whole process tree
(Ray's workers included, since a local Ray starts them under the driver)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import psutil


@dataclass
class Measurement:
    label: str
    seconds: float
    peak_rss_mib: float
    returncode: int
    output: str
    # (seconds since start, line) for each output line, and (seconds, MiB) for each memory sample:
    # enough to say which stage (a line printed when it ends) held the peak
    lines: list[tuple[float, str]] = field(default_factory=list)
    samples: list[tuple[float, float]] = field(default_factory=list)

    def peak_between(self, start: float, end: float) -> float:
        """Peak MiB of the samples taken in [start, end] seconds."""
        inside = [mib for t, mib in self.samples if start <= t <= end]
        return max(inside, default=0.0)


def tree_rss(root: psutil.Process) -> int:
    """Bytes resident in `root` and all its descendants (a local Ray's workers included)."""
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
    # unbuffered, so each line is stamped when it is printed
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    root = psutil.Process(proc.pid)
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter() - started, tree_rss(root) / 2**20))
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines: list[tuple[float, str]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - started, line.rstrip("\n")))
    proc.wait()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - started
    output = "\n".join(text for _, text in lines)
    if proc.returncode != 0:
        print(output, file=sys.stderr)
    peak = max((mib for _, mib in samples), default=0.0)
    return Measurement(label, seconds, peak, proc.returncode, output, lines, samples)


def print_table(rows: list[Measurement], extra: dict[str, str] | None = None) -> None:
    print(f"{'run':<44} {'wall s':>9} {'peak MiB':>10}  {'note'}")
    for row in rows:
        note = (extra or {}).get(row.label, "")
        print(f"{row.label:<44} {row.seconds:>9.1f} {row.peak_rss_mib:>10.0f}  {note}")
