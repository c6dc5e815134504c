"""`python -m jobs.weekly_training`: sync -> rank -> update -> features -> train -> evaluate ->
register -> activate, for the top N symbols and each timeframe.

Submit it to a cluster with `ray job submit --working-dir . -- python -m jobs.weekly_training`.
Each stage prints one line with counts and timings; a table sums up at the end. A timeframe that
fails leaves its active model untouched and the others go on; the run exits non-zero. A re-run is
safe: data updates are incremental and every training registers a new version.

A timeframe whose retained history cannot hold train, validation and holdout with purge gaps is
skipped with the reason; it is not a failure. Monthly candles are few (60 in five years), so the
1m model is checked on held-out data for its first 3 steps only; its later steps are naive with
bands extrapolated by sqrt(h) and a coin-flip confidence, and its metrics say so.
"""

from __future__ import annotations

import argparse
import sys
import time

from sqlalchemy.engine import Engine

from accuracy.tracker import LiveSummary
from config import Settings
from engine.ingest import update_with_ray
from engine.layout import ONE_TASK_BELOW
from jobs import track_accuracy, verify_ledger
from jobs.cli import add_model_options, init_ray, model_params, parse_timeframes, parser, positive_int, setup
from jobs.metrics import TrainingMetrics
from market_data.factory import make_source
from market_data.source import utc
from market_data.timeframes import TIMEFRAMES
from market_data.timeframes import spec as timeframe_spec
from market_data.universe import rank_symbols, sync_symbols, top_symbols
from market_data.update import update_local
from storage.location import join
from storage.registry import ModelRegistry
from training.candidates import model_names
from training.dataset import NotEnoughHistory
from training.models.xgb_booster import load_tuned_params
from training.pipeline import TrainOutcome, train_timeframe
from training.spec import FitSpec
from training.stages import HOLDOUT_ORIGINS, StageTimer


def summary_table(outcomes: dict[str, TrainOutcome | str]) -> str:
    head = f"{'tf':<4} {'version':<8} {'active':<7} {'MAE model':>10} {'MAE naive':>10} {'dir acc':>8} {'cover80':>8} {'seconds':>8}"
    lines = [head, "-" * len(head)]
    for tf, outcome in outcomes.items():
        if isinstance(outcome, str):
            lines.append(f"{tf:<4} FAILED: {outcome}")
            continue
        m, n = outcome.report["model"]["summary"], outcome.report["naive"]["summary"]
        lines.append(f"{tf:<4} {outcome.record.version:<8} {'yes' if outcome.activated else 'no':<7} "
                     f"{m['mae_mean']:>10.5f} {n['mae_mean']:>10.5f} {m['directional_accuracy_mean']:>8.3f} "
                     f"{m['coverage_80_mean']:>8.3f} {sum(outcome.seconds.values()):>8.1f}")
    return "\n".join(lines)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = parser(__doc__)
    p.add_argument("--top", type=positive_int, default=500, help="symbols by USD volume rank (default 500)")
    p.add_argument("--timeframes", type=parse_timeframes, default=list(TIMEFRAMES), help="comma-separated")
    p.add_argument("--no-ray", action="store_true", help="fetch and fit in this process")
    p.add_argument("--skip-data", action="store_true", help="train on the lake as it is (no sync/rank/update)")
    p.add_argument("--model", choices=model_names(), default="auto",
                   help="auto (every model below, the one that wins on validation deployed, naive included), "
                        "xgboost (recursive), ensemble (40%% LSTM + 40%% XGBoost + 20%% random forest, direct), "
                        "ensemble_fitted (weights fitted on validation) or one direct model (default auto)")
    add_model_options(p)
    p.add_argument("--origins", type=positive_int, default=HOLDOUT_ORIGINS,
                   help=f"forecast origins for calibration and for the holdout each (default {HOLDOUT_ORIGINS})")
    p.add_argument("--max-failures", type=int, default=2,
                   help="Ray Train worker restarts (from the last checkpoint) before a fit fails (default 2)")
    p.add_argument("--train-workers", type=positive_int, help="Ray Train workers (default: one per two CPUs)")
    p.add_argument("--one-task-below", type=int, default=ONE_TASK_BELOW, metavar="CANDLES",
                   help="a timeframe with fewer candles fits in one Ray task instead of Ray Data + a Ray Train "
                        f"worker group, whose start-up would be most of its fit (default {ONE_TASK_BELOW}; 0: never)")
    p.add_argument("--shuffle-targets", action="store_true",
                   help="sanity check: fit on permuted targets; such a model must never be activated")
    return p.parse_args(argv)


def prepare_data(args: argparse.Namespace, settings: Settings, engine: Engine, timer: StageTimer) -> list[str]:
    """Sync and rank the symbols and update the lake (unless `--skip-data`); the top tickers."""
    if not args.skip_data:
        source = make_source(settings)
        timer.run("sync", lambda: sync_symbols(engine, source),
                  lambda r: f"+{r.added} new, -{r.deactivated} inactive, {r.active} active")
        timer.run("rank", lambda: rank_symbols(engine, source, args.as_of),
                  lambda r: f"{r.ranked} ranked by USD volume of {r.day}")
    tickers = top_symbols(engine, args.top)
    if not tickers:
        sys.exit("weekly_training: no ranked symbols; the market source listed nothing with volume")
    if not args.skip_data:
        update = update_local if args.no_ray else update_with_ray
        results = timer.run("update", lambda: update(settings, tickers, args.timeframes, args.as_of),
                            lambda rs: f"{len(rs)} pairs, {sum(r.status == 'failed' for r in rs)} failed, "
                                       f"{sum(r.added for r in rs)} new candles")
        for r in results:
            if r.status == "failed":
                print(f"  update failed {r.ticker} {r.timeframe}: {r.message}")
    return tickers


def train_one(args: argparse.Namespace, settings: Settings, registry: ModelRegistry, tickers: list[str],
              tf: str) -> TrainOutcome:
    params, direct_params = model_params(args, load_tuned_params(settings.model_dir, tf))
    spec = FitSpec(settings.data_dir, tickers, tf, utc(args.as_of), params=params, direct_params=direct_params,
                   use_ray=not args.no_ray, storage_path=join(settings.model_dir, ".ray_train"),
                   max_failures=args.max_failures, shuffle_targets=args.shuffle_targets,
                   calibration_origins=args.origins, train_workers=args.train_workers,
                   one_task_below=args.one_task_below,
                   refit=timeframe_spec(tf).deploy_refit)  # no refit that would not be deployed
    return train_timeframe(registry, spec, args.model, max_origins=args.origins)


def print_outgoing(timeframes: list[str], outgoing: dict[str, LiveSummary], skipped: dict[str, str]) -> None:
    """How each outgoing model's served forecasts fared, and why any timeframe was skipped."""
    for tf in timeframes:
        if tf in outgoing:
            o = outgoing[tf]
            print(f"{tf:<4} outgoing {o.model_version} live, last 7 days: MAE {o.mae:.5f} vs naive {o.naive_mae:.5f}, "
                  f"dir acc {o.directional_accuracy:.3f}, cover80 {o.coverage_80:.3f} ({o.n} served steps)")
        else:
            print(f"{tf:<4} outgoing model: no served forecasts scored in the last 7 days")
    for tf, why in skipped.items():
        print(f"{tf:<4} skipped (not a failure): {why}")


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    settings, engine = setup()
    if not args.no_ray:
        init_ray()
    started = time.perf_counter()
    metrics = TrainingMetrics("weekly_training")
    timer = StageTimer("weekly")
    # first, how the outgoing models' served forecasts fared (printed beside the new holdout below)
    _, live = timer.run("accuracy", lambda: track_accuracy.run(settings, engine, args.as_of),
                        lambda r: f"{r[0].filled} served steps scored")
    # the track record first: a ledger that no longer verifies is an alarm no training may bury
    if not timer.run("ledger", lambda: verify_ledger.run(engine), lambda r: f"{r.checked} entries verified").ok:
        sys.exit("weekly_training: the forecast ledger does not verify (above); fix or explain it before training")
    tickers = prepare_data(args, settings, engine, timer)
    metrics.stages("all", timer.seconds)
    registry = ModelRegistry(engine, settings.model_dir)
    outcomes: dict[str, TrainOutcome | str] = {}
    skipped: dict[str, str] = {}
    for tf in args.timeframes:
        try:
            outcome = train_one(args, settings, registry, tickers, tf)
            outcomes[tf] = outcome
            metrics.stages(tf, outcome.seconds)
            metrics.outcome(tf, args.model, "activated" if outcome.activated else "registered")
        except NotEnoughHistory as exc:
            skipped[tf] = str(exc)
            print(f"[{tf}] SKIPPED: {exc}")
            metrics.outcome(tf, args.model, "skipped")
        except Exception as exc:
            outcomes[tf] = f"{type(exc).__name__}: {exc}"
            print(f"[{tf}] FAILED: {outcomes[tf]} (its active model is untouched)")
            metrics.outcome(tf, args.model, "failed")
    print(f"\nweekly_training ({args.model}) as of {args.as_of:%Y-%m-%d %H:%M} UTC, top {len(tickers)} symbols, "
          f"{time.perf_counter() - started:.0f}s")
    print(summary_table(outcomes))
    print_outgoing(args.timeframes, {s.timeframe: s for s in live}, skipped)
    failed = any(isinstance(o, str) for o in outcomes.values())
    metrics.finished(time.perf_counter() - started, ok=not failed)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
