"""The prediction flow's refusals: an unknown symbol, market data that cannot be had, a request
the models cannot answer. The HTTP app answers them like every other package's `Refusal`."""

from __future__ import annotations

from typing import Any

from refusals import Refusal


class PredictionError(Refusal):
    """A refusal of the prediction flow (unknown symbol, market data, models)."""


class MarketUnavailable(PredictionError):
    """The market source failed; the forecast flow attaches the last stored prediction, marked
    stale, so that a person still sees something while the source recovers."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "market_data_unavailable", message)

    def with_last(self, last: dict[str, Any] | None) -> PredictionError:
        if last is None:
            return PredictionError(503, self.code, self.message + ".")
        return PredictionError(503, self.code, self.message + "; the last prediction is attached, marked stale.",
                               extra={"last_prediction": last})
