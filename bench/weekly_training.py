"""Benchmark the weekly job on the synthetic market: wall time and peak memory per stage, and, in
the same run, the same training with plain `xgboost.train` in one process (`--no-ray`).

    .venv/bin/python -m bench.weekly_training [--top 500] [--timeframes 1h,4h,1d,1w,1m]

Production scale is `--top 500` with all five timeframes (the
default); on a 2-core machine that takes hours, so smaller runs say what they measured.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile

from bench.measure import Measurement, run_measured

AS_OF = "2025-10-01"
STAGE = re.compile(r"^\[(?P<scope>[^\]]+)\] (?P<stage>\S+)\s+(?P<what>.*) \((?P<seconds>[0-9.]+)s\)$")


def stages(run: Measurement) -> list[tuple[str, str, float, float, str]]:
    """(scope, stage, seconds, peak MiB during the stage, what) for each stage line of a run; a
    stage is taken to span its own seconds up to the moment its line was printed."""
    rows = []
    for printed, line in run.lines:
        m = STAGE.match(line.strip())
        if m:
            seconds = float(m["seconds"])
            rows.append((m["scope"], m["stage"], seconds, run.peak_between(printed - seconds - 0.5, printed),
                         m["what"][:70]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--top", type=int, default=500)
    parser.add_argument("--timeframes", default="1h,4h,1d,1w,1m")
    parser.add_argument("--origins", type=int, default=600)
    parser.add_argument("--model", default="xgboost", help="what both runs fit (the Ray/plain comparison of the "
                                                          "recursive model by default; `auto` fits every candidate)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"MARKET_SOURCE": "synthetic", "DATA_DIR": f"{tmp}/data", "MODEL_DIR": f"{tmp}/models",
               "DATABASE_URL": f"sqlite:///{tmp}/app.db"}
        common = ["--top", str(args.top), "--timeframes", args.timeframes, "--as-of", AS_OF,
                  "--origins", str(args.origins), "--model", args.model]
        ray_run = run_measured("ray", [sys.executable, "-m", "jobs.weekly_training", *common], env)
        if ray_run.returncode != 0:
            raise SystemExit(ray_run.output[-4000:])
        plain = run_measured("plain", [sys.executable, "-m", "jobs.weekly_training", *common, "--no-ray",
                                       "--skip-data"], env)
        if plain.returncode != 0:
            raise SystemExit(plain.output[-4000:])
    print(f"weekly_training on the synthetic market: top {args.top}, timeframes {args.timeframes}, as of {AS_OF}")
    print(f"\nwith Ray (data + Ray Data + Ray Train): {ray_run.seconds:.0f}s wall, peak {ray_run.peak_rss_mib:.0f} MiB")
    for scope, stage, seconds, peak, what in stages(ray_run):
        print(f"  {scope:<8} {stage:<10} {seconds:>8.1f}s {peak:>7.0f} MiB  {what}")
    print(f"\nplain (same lake, pandas + xgboost.train in one process): {plain.seconds:.0f}s wall, "
          f"peak {plain.peak_rss_mib:.0f} MiB")
    for scope, stage, seconds, peak, what in stages(plain):
        print(f"  {scope:<8} {stage:<10} {seconds:>8.1f}s {peak:>7.0f} MiB  {what}")
    print("\n" + "\n".join(ray_run.output.strip().splitlines()[-(len(args.timeframes.split(',')) + 3):]))


if __name__ == "__main__":
    main()
