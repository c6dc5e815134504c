"""`python -m jobs.rank_symbols`: rank symbols by USD volume (volume x VWAP) of the last full day."""

from __future__ import annotations

from jobs.cli import parser, setup
from market_data.factory import make_source
from market_data.universe import rank_symbols, top_symbols


def main(argv: list[str] | None = None) -> None:
    args = parser(__doc__).parse_args(argv)
    settings, engine = setup()
    result = rank_symbols(engine, make_source(settings), args.as_of)
    top = top_symbols(engine, 5)
    print(f"rank_symbols: {result.ranked} ranked by USD volume of {result.day}, {result.unranked} without data; "
          f"top: {', '.join(top)}")


if __name__ == "__main__":
    main()
