"""`python -m jobs.track_accuracy [--as-of T] [--days 7]`: score every served forecast step
whose candle has closed by `--as-of` (actual close, direction right or not), refresh the
`model_accuracy` aggregates, print the active models' live figures beside naive's, and log an
ALARM line for a timeframe whose last 7 days' band coverage leaves 0.70-0.90 or whose model
is worse than naive. Idempotent: a re-run finds nothing new and changes nothing."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Engine

from accuracy.tracker import LiveSummary, TrackReport, live_summaries, track
from config import Settings
from jobs.cli import parser, positive_int, setup
from market_data.factory import make_source
from storage.lake import Lake
from storage.registry import ModelRegistry

log = logging.getLogger("jobs.track_accuracy")


def run(settings: Settings, engine: Engine, as_of: datetime, days: int = 7) -> tuple[TrackReport, list[LiveSummary]]:
    """Track, then the live figures of the active models (weekly_training calls this first)."""
    report = track(engine, make_source(settings), Lake(settings.data_dir), as_of)
    print(f"[accuracy] {report.filled} steps scored ({report.from_lake} candles from the lake, {report.requests} "
          f"market-data requests for {report.pairs} symbol x timeframe pairs), {report.unavailable} unavailable, "
          f"{report.still_open} still open, {report.aggregated_rows} aggregate rows ({report.seconds:.1f}s)")
    for failure in report.failures:
        print(f"  {failure}")
    registry = ModelRegistry(engine, settings.model_dir)
    active = {m.timeframe: m for m in registry.list() if m.is_active}
    summaries = live_summaries(engine, active, as_of, days)
    for s in summaries:
        print(f"[accuracy] {s.timeframe} {s.model_version} last {days} days: {s.n} steps, MAE {s.mae:.5f} vs naive "
              f"{s.naive_mae:.5f} (ratio {s.mae_ratio:.3f}), direction {s.directional_accuracy:.3f}, "
              f"80 % band coverage {s.coverage_80:.3f}")
        for alarm in s.alarms():
            log.warning("ALARM %s model %s: %s", s.timeframe, s.model_version, alarm)
    return report, summaries


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--days", type=positive_int, default=7, help="window of the live figures (default 7)")
    args = p.parse_args(argv)
    settings, engine = setup()
    run(settings, engine, args.as_of, args.days)


if __name__ == "__main__":
    main()
