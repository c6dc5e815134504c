"""One fan-out for every per-symbol stage: a function of (lake, ticker) mapped over the tickers,
as the plain loop in this process or as one Ray Data task per symbol.

Tasks rather than actors, one symbol and one CPU each: a task frees its CPU as soon as it is
done, so a Ray Train fit that follows can have it, and a symbol's rows never wait behind another
symbol's. The function gets a `Lake` opened where it runs (tasks read the lake themselves; only
the tickers travel).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from storage.lake import Lake

SymbolFn = Callable[..., Any]  # (lake, ticker, **kwargs) -> a DataFrame or a dict of arrays


class _PerSymbol:
    """Ray Data's batch function: a batch of tickers in, the concatenated results out."""

    def __init__(self, fn: SymbolFn, data_dir: str, concat: Callable[[list[Any]], Any], kwargs: dict[str, Any]) -> None:
        self.fn, self.data_dir, self.concat, self.kwargs = fn, data_dir, concat, kwargs

    def __call__(self, batch: Any) -> Any:
        lake = Lake(self.data_dir)
        return self.concat([self.fn(lake, str(ticker), **self.kwargs) for ticker in batch["symbol"]])


def map_symbols_local(fn: SymbolFn, data_dir: str, tickers: Iterable[str], **kwargs: Any) -> list[Any]:
    """The plain loop: `fn(lake, ticker, **kwargs)` for each ticker, in this process."""
    lake = Lake(data_dir)
    return [fn(lake, ticker, **kwargs) for ticker in tickers]


def map_symbols(fn: SymbolFn, data_dir: str, tickers: Iterable[str], concat: Callable[[list[Any]], Any],
                batch_format: str = "pandas", **kwargs: Any) -> Any:
    """A Ray Dataset of `fn(lake, ticker, **kwargs)` over `tickers`, one task per symbol; `concat`
    joins one batch's results (a DataFrame for `pandas`, a dict of arrays for `numpy`)."""
    import ray

    tickers = list(tickers)
    symbols = ray.data.from_items([{"symbol": t} for t in tickers], override_num_blocks=max(1, len(tickers)))
    return symbols.map_batches(_PerSymbol(fn, str(data_dir), concat, kwargs), batch_size=1,
                               batch_format=batch_format, num_cpus=1)
