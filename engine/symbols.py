"""One fan-out for every per-symbol stage: a function of (lake, ticker) mapped over the tickers,
as the plain loop in this process or as Ray Data tasks over groups of symbols.

Tasks rather than actors, one CPU each: a task frees its CPU as soon as it is done, so a Ray
Train fit that follows can have it. A task takes a group of symbols, a few groups per CPU of
the cluster: one task per symbol cost ~0.2 s of scheduling each, which for 500 symbols of 60
monthly candles was 20 times the work itself (bench.weekly_training: a 116 s fit stage against
6 s in one process); a few groups per CPU still let a fast task's CPU take the next group while
a slow one runs. The function gets a `Lake` opened where it runs (tasks read the lake
themselves; only the tickers travel).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engine.layout import Placement, RunOptions
from storage.lake import Lake

SymbolFn = Callable[..., Any]  # (lake, ticker, **kwargs) -> a DataFrame or a dict of arrays
GROUPS_PER_CPU = 4


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
    """A Ray Dataset of `fn(lake, ticker, **kwargs)` over `tickers`, one task per group of
    symbols (`GROUPS_PER_CPU` groups per CPU of the cluster); `concat` joins one group's results
    (a DataFrame for `pandas`, a dict of arrays for `numpy`)."""
    import ray

    tickers = list(tickers)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    groups = max(1, min(len(tickers), GROUPS_PER_CPU * cpus))
    symbols = ray.data.from_items([{"symbol": t} for t in tickers], override_num_blocks=groups)
    return symbols.map_batches(_PerSymbol(fn, str(data_dir), concat, kwargs), batch_size=None,
                               batch_format=batch_format, num_cpus=1)


def gather_symbols(run: RunOptions, fn: SymbolFn, data_dir: str, tickers: Iterable[str],
                   concat: Callable[[list[Any]], Any], **kwargs: Any) -> list[Any]:
    """`fn(lake, ticker, **kwargs)` over `tickers`, gathered here as groups joined by `concat`
    (dicts of arrays): one group from the plain loop, or on Ray (`run.placement`) one per Ray
    Data task, for results that must travel whole (the LSTM's sequences) rather than as a table."""
    if run.placement() is Placement.HERE:
        return [concat(map_symbols_local(fn, data_dir, tickers, **kwargs))]
    dataset = map_symbols(fn, data_dir, tickers, concat, batch_format="numpy", **kwargs)
    return list(dataset.iter_batches(batch_size=None, batch_format="numpy"))
