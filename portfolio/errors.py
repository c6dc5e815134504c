"""The error type of the portfolio package: what the API answers with."""

from __future__ import annotations

from refusals import Refusal


class PortfolioError(Refusal):
    """A refusal of the portfolio package (watchlists, alerts, trading plans)."""


def not_found(what: str, object_id: object) -> PortfolioError:
    return PortfolioError(404, f"unknown_{what.replace(' ', '_')}", f"no {what} {object_id}")
