"""`python -m jobs.update_data`: incremental fetch, clean, append and trim of the lake for the top N."""

from __future__ import annotations

import sys
import time
from collections import Counter

from engine.ingest import update_with_ray
from jobs.cli import init_ray, parse_timeframes, parser, positive_int, setup
from market_data.timeframes import TIMEFRAMES
from market_data.universe import top_symbols
from market_data.update import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_REQUESTS_PER_MINUTE,
    PairResult,
    update_local,
)


def summarize(results: list[PairResult], seconds: float) -> str:
    counts = Counter(r.status for r in results)
    added = sum(r.added for r in results)
    lines = [f"update_data: {len(results)} pairs in {seconds:.1f}s: {counts.get('ok', 0)} ok, "
             f"{counts.get('empty', 0)} empty, {counts.get('failed', 0)} failed; {added} new candles"]
    for r in results:
        if r.status == "failed":
            lines.append(f"  FAILED {r.ticker} {r.timeframe}: {r.message}")
    if counts.get("failed"):
        lines.append("  a re-run fetches what failed (and only what is still missing)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--top", type=positive_int, default=500, help="how many symbols by volume rank (default 500)")
    p.add_argument("--timeframes", type=parse_timeframes, default=list(TIMEFRAMES), help="comma-separated")
    p.add_argument("--tickers", type=lambda s: [t for t in s.split(",") if t], default=None,
                   help="explicit tickers instead of the top N")
    p.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT)
    p.add_argument("--requests-per-minute", type=float, default=DEFAULT_REQUESTS_PER_MINUTE)
    p.add_argument("--no-ray", action="store_true", help="run in this process (the plain baseline)")
    args = p.parse_args(argv)
    settings, engine = setup()
    tickers = args.tickers or top_symbols(engine, args.top)
    if not tickers:
        sys.exit("update_data: no ranked symbols; run jobs.sync_symbols and jobs.rank_symbols first")
    started = time.perf_counter()
    if args.no_ray:
        results = update_local(settings, tickers, args.timeframes, args.as_of, args.requests_per_minute)
    else:
        init_ray()
        results = update_with_ray(settings, tickers, args.timeframes, args.as_of, args.max_in_flight,
                                  args.requests_per_minute)
    print(summarize(results, time.perf_counter() - started))
    if results and all(r.status == "failed" for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
