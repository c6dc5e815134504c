"""The error type of the portfolio package: what the API answers with."""

from __future__ import annotations


class PortfolioError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def not_found(what: str, object_id: object) -> PortfolioError:
    return PortfolioError(404, f"unknown_{what.replace(' ', '_')}", f"no {what} {object_id}")
