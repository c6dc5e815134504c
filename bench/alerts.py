"""Benchmark one alert scan: 10,000 active alerts over 500 synthetic symbols on PostgreSQL, with
emails to the log (no provider): wall time and market-data requests per scan. The baseline, in
the same run, is the plain way: a price request per alert, timed on a sample and scaled.

    .venv/bin/python -m bench.alerts [--alerts 10000] [--symbols 500]
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from datetime import datetime, timedelta, timezone

from bench.counting import CountingSource
from bench.scratch_db import scratch_database
from config import EmailSettings
from mail.sender import EmailNotifier
from market_data.synthetic import SyntheticMarket
from portfolio.scanner import PRICE_TIMEFRAME, AlertScanner
from storage.cache import MemoryCache
from storage.db import make_engine, session_scope
from storage.schema import Alert, Symbol, User

NOW = datetime(2025, 10, 1, tzinfo=timezone.utc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--baseline-sample", type=int, default=200)
    args = parser.parse_args()
    with scratch_database("bench_alerts") as url:
        engine = make_engine(url)
        market = SyntheticMarket(seed=7, n_coins=600, now=NOW.replace(tzinfo=None))
        tickers = [t.ticker for t in market.list_tickers()][:args.symbols]
        rng = random.Random(1)
        with session_scope(engine) as s:
            user = User(email="bench@example.com", password_hash="x", tier="pro", email_verified=datetime(2026, 1, 1))
            symbols = [Symbol(ticker=t, name=t) for t in tickers]
            s.add_all([user, *symbols])
        with engine.begin() as conn:
            rows = []
            for i in range(args.alerts):
                sym = symbols[i % len(symbols)]
                rows.append({"id": uuid.uuid4(), "user_id": user.id, "symbol_id": sym.id,
                             "condition_type": rng.choice(["above", "below", "crossing"]),
                             "target_price": 10 ** rng.uniform(-5, 5), "is_active": True,
                             "expires_at": None if i % 10 else (NOW - timedelta(days=1)).replace(tzinfo=None)})
            conn.execute(Alert.__table__.insert(), rows)
        source = CountingSource(market)
        scanner = AlertScanner(engine, MemoryCache(), source, EmailNotifier(EmailSettings(sender="b@x")),
                               clock=lambda: NOW)
        report = scanner.scan()
        sample = tickers[:args.baseline_sample]
        started = time.perf_counter()
        for t in sample:  # the time of one price request, for the baseline's one request per alert
            market.aggregates(t, PRICE_TIMEFRAME, NOW - timedelta(days=2), NOW)
        per_request = (time.perf_counter() - started) / len(sample)
        print(f"\nalert scan, {args.alerts} active alerts over {len(tickers)} synthetic symbols "
              f"({datetime.now(timezone.utc):%Y-%m-%d}, PostgreSQL, emails to the log)")
        print(f"{'':<36} {'seconds':>9} {'requests':>9}")
        print(f"{'scanner (one request per symbol)':<36} {report.seconds:>9.2f} {report.requests:>9}")
        print(f"{'baseline: a request per alert':<36} {per_request * args.alerts:>9.1f} {args.alerts:>9}"
              f"   (scaled from {len(sample)} requests)")
        print(f"triggered {report.triggered}, expired skipped {report.expired}; goal one request per symbol and "
              f"under 10 s: {'met' if report.requests <= len(tickers) and report.seconds < 10 else 'MISSED'}")
        engine.dispose()


if __name__ == "__main__":
    main()
