"""`python -m jobs.scan_alerts [--once] [--every 60]`: scan the active price alerts, trigger those
whose condition holds, and email their owners (Resend; without RESEND_API_KEY the notification
is logged and its alert log says so). Without `--once` it scans every `--every` seconds until
stopped; the Serve application also runs it as its `AlertScanner` deployment."""

from __future__ import annotations

import time

from jobs.cli import parser, positive_int, setup
from portfolio.scanner import AlertScanner


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--once", action="store_true", help="one scan, then exit")
    p.add_argument("--every", type=positive_int, default=60, help="seconds between scans (default 60)")
    args = p.parse_args(argv)
    settings, _ = setup()
    scanner = AlertScanner.for_settings(settings)
    while True:
        print(scanner.scan().describe(), flush=True)
        if args.once:
            return
        time.sleep(args.every)


if __name__ == "__main__":
    main()
