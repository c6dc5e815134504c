"""`python -m jobs.verify_ledger [--from SEQ]`: recompute the track record's hash chain from the
stored forecasts and exit 1 naming the first entry that does not verify (a changed close, band,
time or model version; a deleted or reordered entry). `--from` trusts the entries before SEQ
(a resumed check of a long ledger). Prints its progress on a long ledger, then a summary with
the head's hash, the value to compare with a published one."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from engine.progress import Throttled
from jobs.cli import positive_int, setup
from predictions import ledger


def run(engine: Engine, start: int = 1, say: Callable[[str], None] = print) -> ledger.Verification:
    """Verify and say so (the weekly job calls this before it trains)."""
    started = time.perf_counter()
    progress = Throttled("[ledger]", say)  # every few seconds: how far, and about how long is left
    result = ledger.verify(engine, start, lambda checked, total: progress(checked, total, "entries verified"))
    seconds = time.perf_counter() - started
    if result.head is None:
        say("[ledger] empty: no forecast has been entered yet")
    elif result.ok:
        say(f"[ledger] {result.checked} entries verified from {start} to {result.head.seq} in {seconds:.1f}s "
            f"({result.checked / max(seconds, 1e-9):,.0f}/s); head {result.head.seq} {result.head.hash} "
            f"made {result.head.made_at:%Y-%m-%d %H:%M:%S} UTC")
    else:
        say(f"[ledger] DOES NOT VERIFY: {result.failure} ({result.checked} entries before it verified)")
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--from", dest="start", type=positive_int, default=1, metavar="SEQ",
                   help="first entry to check; the ones before it are trusted (default 1)")
    args = p.parse_args(argv)
    _, engine = setup()
    if not run(engine, args.start).ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
