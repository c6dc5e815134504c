"""`python -m jobs.scan_alerts [--once] [--every 60]`: scan the active price alerts, trigger those
whose condition holds, and email their owners (Resend; without RESEND_API_KEY the notification
is logged and its alert log says so). Without `--once` it scans every `--every` seconds until
stopped; the Serve application also runs it as its `AlertScanner` deployment."""

from __future__ import annotations

import time

from config import Settings
from jobs.cli import parser, positive_int, setup
from mail.sender import EmailNotifier
from market_data.factory import make_source
from portfolio.scanner import AlertScanner, ScanReport
from storage.cache import make_cache
from storage.db import make_engine


def build_scanner(settings: Settings) -> AlertScanner:
    return AlertScanner(make_engine(settings.database_url), make_cache(settings.redis_url), make_source(settings),
                        EmailNotifier(settings.email))


def describe(r: ScanReport) -> str:
    return (f"[alerts] {r.alerts} active alerts on {r.symbols} symbols ({r.requests} market-data requests), "
            f"{r.triggered} triggered, {r.expired} expired; emails {r.sent} sent, {r.not_sent} not sent, "
            f"{r.failed} failed ({r.seconds:.2f}s)")


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--once", action="store_true", help="one scan, then exit")
    p.add_argument("--every", type=positive_int, default=60, help="seconds between scans (default 60)")
    args = p.parse_args(argv)
    settings, _ = setup()
    scanner = build_scanner(settings)
    while True:
        print(describe(scanner.scan()), flush=True)
        if args.once:
            return
        time.sleep(args.every)


if __name__ == "__main__":
    main()
