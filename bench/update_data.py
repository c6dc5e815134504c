"""Benchmark `jobs.update_data` on the synthetic market: 500 symbols x 5 timeframes, from an
empty lake and then incrementally (one day later), through Ray and through the plain
single-process loop over the same source, in the same run.

    .venv/bin/python -m bench.update_data [--symbols 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.measure import print_table, run_measured

AS_OF = "2025-10-01T00:00:00"
LATER = "2025-10-02T00:00:00"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=500)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode, extra in (("ray", []), ("plain loop", ["--no-ray"])):
            root = Path(tmp) / mode.replace(" ", "_")
            env = {"DATA_DIR": str(root / "data"), "DATABASE_URL": f"sqlite:///{root / 'app.db'}",
                   "MARKET_SOURCE": "synthetic"}
            py = sys.executable
            for job in ("jobs.sync_symbols", "jobs.rank_symbols"):
                run_measured(job, [py, "-m", job, "--as-of", AS_OF], env)
            for phase, as_of in (("empty lake", AS_OF), ("incremental +1 day", LATER)):
                m = run_measured(f"{mode}: {phase}", [py, "-m", "jobs.update_data", "--top", str(args.symbols),
                                                      "--as-of", as_of, *extra], env)
                m.label = f"{mode}: {phase}"
                rows.append(m)
                print(m.output.strip().splitlines()[-1] if m.output.strip() else "", flush=True)
    print(f"\nupdate_data, {args.symbols} synthetic symbols x 5 timeframes (1h 365 d, 4h 1095 d, 1d/1w/1m 1825 d)")
    print_table(rows)


if __name__ == "__main__":
    main()
