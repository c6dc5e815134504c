"""A market source that counts its requests: the benchmarks' goals are stated in requests."""

from __future__ import annotations

from typing import Any

import pandas as pd

from market_data.source import MarketSource


class CountingSource:
    def __init__(self, source: MarketSource) -> None:
        self.source, self.requests = source, 0

    def aggregates(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        self.requests += 1
        return self.source.aggregates(*args, **kwargs)
