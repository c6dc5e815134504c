"""`python -m jobs.sync_symbols`: add new tickers from the market source, mark vanished ones inactive."""

from __future__ import annotations

from jobs.cli import parser, setup
from market_data.factory import make_source
from market_data.universe import sync_symbols


def main(argv: list[str] | None = None) -> None:
    parser(__doc__).parse_args(argv)
    settings, engine = setup()
    result = sync_symbols(engine, make_source(settings))
    print(f"sync_symbols: +{result.added} new, {result.reactivated} reactivated, "
          f"-{result.deactivated} inactive; {result.active} active at the source")


if __name__ == "__main__":
    main()
