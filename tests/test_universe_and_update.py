"""Symbol sync, USD-volume ranking and incremental lake updates, through the jobs, on Ray."""

from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from sqlmodel import select

from config import load_settings
from jobs import rank_symbols as rank_job
from jobs import sync_symbols as sync_job
from jobs import update_data as update_job
from market_data.synthetic import SyntheticMarket
from market_data.universe import last_full_day, rank_symbols, sync_symbols, top_symbols
from market_data.update import update_local, update_pair
from storage.db import make_engine, session_scope
from storage.lake import Lake
from storage.schema import Symbol
from tests.fake_massive import FakeMassive, Faults

NOW = datetime(2025, 11, 1, tzinfo=timezone.utc)
AS_OF = "2025-10-20T06:30:00"


def test_last_full_day() -> None:
    assert last_full_day(datetime(2024, 12, 31, tzinfo=timezone.utc)) == date(2024, 12, 30)
    assert last_full_day(datetime(2024, 12, 31, 15, tzinfo=timezone.utc)) == date(2024, 12, 30)


def test_sync_adds_deactivates_and_reactivates(engine) -> None:
    market = SyntheticMarket(seed=1, n_coins=12, now=NOW)
    with FakeMassive(market) as fake:
        from market_data.massive_source import MassiveSource

        source = MassiveSource("test-key", fake.base)
        first = sync_symbols(engine, source)
        assert (first.added, first.deactivated) == (12, 0)
        gone = market.list_tickers()[0].ticker
        fake.delisted = {gone}
        second = sync_symbols(engine, source)
        assert (second.added, second.deactivated, second.active) == (0, 1, 11)
        fake.delisted = set()
        assert sync_symbols(engine, source).reactivated == 1
    with session_scope(engine) as s:
        assert len(s.exec(select(Symbol).where(Symbol.is_active.is_(True))).all()) == 12


def test_rank_by_usd_volume_of_the_last_full_day(engine) -> None:
    market = SyntheticMarket(seed=1, n_coins=12, now=NOW)
    sync_symbols(engine, market)
    result = rank_symbols(engine, market, datetime(2025, 10, 2, 9, tzinfo=timezone.utc))
    assert result.day == date(2025, 10, 1) and result.ranked == 12
    grouped = market.grouped_daily(date(2025, 10, 1))
    expected = grouped.assign(usd=grouped["volume"] * grouped["vwap"]).sort_values("usd", ascending=False)
    assert top_symbols(engine, 5) == expected["ticker"].head(5).tolist()
    with session_scope(engine) as s:
        best = s.exec(select(Symbol).where(Symbol.volume_rank == 1)).one()
    assert float(best.volume_24h_usd) == pytest.approx(expected["usd"].iloc[0], rel=1e-9, abs=0.01)


def test_incremental_update_equals_a_full_fetch(tmp_path: Path) -> None:
    market = SyntheticMarket(seed=1, n_coins=3, now=NOW)
    ticker = market.list_tickers()[0].ticker
    steps = [datetime(2025, 10, 1, 5, tzinfo=timezone.utc), datetime(2025, 10, 3, 17, 30, tzinfo=timezone.utc),
             datetime(2025, 10, 20, tzinfo=timezone.utc)]
    incremental, full = Lake(tmp_path / "a"), Lake(tmp_path / "b")
    for as_of in steps:
        for tf in ("1h", "4h", "1d", "1w", "1m"):
            result = update_pair(incremental, market, ticker, tf, as_of)
            assert result.status == "ok", result
    for tf in ("1h", "4h", "1d", "1w", "1m"):
        update_pair(full, market, ticker, tf, steps[-1])
        pd.testing.assert_frame_equal(incremental.read(ticker, tf), full.read(ticker, tf))
        assert incremental.read(ticker, tf)["timestamp"].max() < pd.Timestamp(steps[-1])
    # a second run as of the same moment fetches only the last candle again and adds nothing
    again = update_pair(incremental, market, ticker, "1h", steps[-1])
    assert (again.fetched, again.added) == (1, 0)


def _run_jobs(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *extra: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    sync_job.main([])
    rank_job.main(["--as-of", AS_OF])
    update_job.main(["--top", "30", "--timeframes", "1h,4h,1d,1w,1m", "--as-of", AS_OF, *extra])


def _lake_files(root: Path) -> dict[str, pd.DataFrame]:
    return {str(p.relative_to(root)): pd.read_parquet(p) for p in sorted(root.rglob("*.parquet"))}


@pytest.mark.slow
def test_faults_and_dirty_rows_give_the_same_lake_as_a_clean_run(
    ray_local: None, pg_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    market = SyntheticMarket(seed=9, n_coins=36, now=NOW)
    with FakeMassive(market) as clean, FakeMassive(market, faults=Faults(rate=0.1, dirty=True, seed=1)) as faulty:
        base_env = {"MARKET_SOURCE": "massive", "MASSIVE_API_KEY": "test-key", "MASSIVE_BACKOFF_S": "0.02"}
        _run_jobs(monkeypatch, {**base_env, "MASSIVE_API_BASE": clean.base, "DATA_DIR": str(tmp_path / "clean"),
                                "DATABASE_URL": f"sqlite:///{tmp_path / 'clean.db'}"}, "--no-ray")
        faulty.always_fail = {market.list_tickers()[5].ticker}
        env = {**base_env, "MASSIVE_API_BASE": faulty.base, "DATA_DIR": str(tmp_path / "faulty"),
               "DATABASE_URL": pg_database_url}
        _run_jobs(monkeypatch, env)
        out = capsys.readouterr().out
        assert "5 failed" in out and f"FAILED {market.list_tickers()[5].ticker}" in out  # its 5 timeframes
        assert faulty.faults > 10
        faulty.always_fail = set()
        update_job.main(["--top", "30", "--as-of", AS_OF])  # the re-run picks up what failed
    clean_files, faulty_files = _lake_files(tmp_path / "clean"), _lake_files(tmp_path / "faulty")
    assert len(clean_files) == 150 and clean_files.keys() == faulty_files.keys()
    for name, frame in clean_files.items():
        pd.testing.assert_frame_equal(faulty_files[name], frame, obj=name)
    engine = make_engine(pg_database_url)
    assert len(top_symbols(engine, 100)) == 36
    engine.dispose()


def test_update_local_reports_failures_and_continues(tmp_path: Path) -> None:
    market = SyntheticMarket(seed=9, n_coins=4, now=NOW)
    tickers = [t.ticker for t in market.list_tickers()]
    with FakeMassive(market) as fake:
        fake.always_fail = {tickers[1]}
        settings = load_settings({"MARKET_SOURCE": "massive", "MASSIVE_API_KEY": "test-key",
                                  "MASSIVE_API_BASE": fake.base, "DATA_DIR": str(tmp_path), "MASSIVE_BACKOFF_S": "0"})
        results = update_local(settings, [*tickers, "X:UNKNOWNUSD"], ["1d"], datetime(2025, 10, 20, tzinfo=timezone.utc))
    status = {r.ticker: (r.status, r.message) for r in results}
    assert status[tickers[0]][0] == status[tickers[2]][0] == "ok"
    assert status[tickers[1]][0] == "failed" and "502" in status[tickers[1]][1]
    assert status["X:UNKNOWNUSD"][0] == "failed" and "does not know ticker" in status["X:UNKNOWNUSD"][1]


def test_a_backtests_lake_holds_what_the_weekly_job_had_at_its_train_end(tmp_path: Path) -> None:
    """A lake filled at the test end (the retention counted back from it) is filled again for a
    backtest from the retention before the train end; the fit's candles are then exactly those of
    a lake the weekly job filled at the train end; the test candles stay; a second fill fetches
    nothing; and the fit never reaches before the retention even where the lake does."""
    from market_data.csv_source import CsvSource
    from tests.conftest import DAILY_DATA
    from training.dataset import history_start, training_candles

    source = CsvSource(DAILY_DATA)
    ticker = "X:BTCUSDT"  # from 2018-01-01
    train_end, test_end = datetime(2023, 6, 30, tzinfo=timezone.utc), datetime(2024, 12, 31, tzinfo=timezone.utc)
    backtest, weekly = Lake(tmp_path / "backtest"), Lake(tmp_path / "weekly")
    assert update_pair(backtest, source, ticker, "1d", test_end).status == "ok"  # as the backtest once did
    before = backtest.read(ticker, "1d")
    assert before["timestamp"].iloc[0] >= pd.Timestamp(test_end) - pd.Timedelta(days=1825)
    filled = update_pair(backtest, source, ticker, "1d", test_end, history_as_of=train_end)
    assert filled.status == "ok" and filled.added > 0
    update_pair(weekly, source, ticker, "1d", train_end)
    end = pd.Timestamp(train_end)
    fit, weekly_fit = (training_candles(lake.read(ticker, "1d"), "1d", end) for lake in (backtest, weekly))
    pd.testing.assert_frame_equal(fit, weekly_fit)
    assert fit["timestamp"].iloc[0] >= history_start("1d", end) and len(fit) > 1800  # five years, not four
    stored = backtest.read(ticker, "1d")
    assert stored["timestamp"].iloc[-1] >= pd.Timestamp(test_end) - pd.Timedelta(days=2)  # the test candles
    assert update_pair(backtest, source, ticker, "1d", test_end, history_as_of=train_end).added == 0
    # a lake reaching further back than the retention (filled earlier, never trimmed since) gives the same fit
    update_pair(weekly, source, ticker, "1d", test_end, history_as_of=datetime(2022, 12, 31, tzinfo=timezone.utc))
    pd.testing.assert_frame_equal(training_candles(weekly.read(ticker, "1d"), "1d", end), weekly_fit)
