"""What a route depends on, as FastAPI dependencies: the services the app was built with, and
who is calling (anonymous by client address, or signed in by `Authorization: Bearer <token>` or
the `session` cookie). A route names what it needs in its signature; nothing reads app state
by hand."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.requests import HTTPConnection

from accounts.errors import AccountError
from accounts.service import Account, AccountService, Caller
from accounts.sessions import Client
from billing.errors import billing_disabled
from billing.service import BillingService
from portfolio.service import Portfolio
from predictions.market import MarketView
from predictions.service import PredictionService
from serve_app.metrics import Metrics
from streaming.live import LiveMarket
from transparency.log import TransparencyLog

SESSION_COOKIE = "session"


def _predictions(request: HTTPConnection) -> PredictionService:
    service: PredictionService = request.app.state.service
    return service


def _market(request: HTTPConnection) -> MarketView:
    return _predictions(request).market


def _accounts(request: HTTPConnection) -> AccountService:
    accounts: AccountService = request.app.state.accounts
    return accounts


def _live(request: HTTPConnection) -> LiveMarket | None:
    live: LiveMarket | None = request.app.state.live
    return live


def _log(request: HTTPConnection) -> TransparencyLog:
    log: TransparencyLog = request.app.state.log
    return log


def _portfolio(request: Request) -> Portfolio:
    portfolio: Portfolio = request.app.state.portfolio
    return portfolio


def _metrics(request: HTTPConnection) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _cancel_subscription(request: Request) -> Callable[[uuid.UUID], None]:
    """What deleting an account calls first: billing's cancellation, or nothing without billing."""
    billing: BillingService | None = request.app.state.billing
    return (lambda _user: None) if billing is None else billing.cancel_on_close


def _client(request: HTTPConnection) -> Client:
    return Client(request.client.host if request.client else "unknown", request.headers.get("user-agent"))


def _billing(request: Request) -> BillingService:
    billing: BillingService | None = request.app.state.billing
    if billing is None or not billing.settings.enabled:
        raise billing_disabled()
    return billing


def session_token(request: HTTPConnection) -> str | None:
    """The session token the request carries, by header or cookie; 4xx when they disagree."""
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE) or None
    bearer = None
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AccountError(401, "invalid_authorization", "the Authorization header must be 'Bearer <token>'")
        bearer = value.strip()
    if bearer is not None and cookie is not None and bearer != cookie:
        raise AccountError(400, "conflicting_credentials",
                           "the Authorization header and the session cookie carry different sessions; send one")
    return bearer or cookie


Predictions = Annotated[PredictionService, Depends(_predictions)]
Market = Annotated[MarketView, Depends(_market)]
Accounts = Annotated[AccountService, Depends(_accounts)]
PortfolioDep = Annotated[Portfolio, Depends(_portfolio)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
Live = Annotated[LiveMarket | None, Depends(_live)]
Billing = Annotated[BillingService, Depends(_billing)]
Token = Annotated[str | None, Depends(session_token)]
ClientDep = Annotated[Client, Depends(_client)]
SubscriptionCanceller = Annotated[Callable[[uuid.UUID], None], Depends(_cancel_subscription)]


def _caller(client: ClientDep, accounts: Accounts, token: Token) -> Caller:
    account = None if token is None else accounts.authenticate(token)
    return Caller(account, client.address)


@dataclass(frozen=True)
class Session:
    """A signed-in request: the account and the session token it came with."""

    account: Account
    token: str


def _session(accounts: Accounts, token: Token) -> Session:
    if token is None:
        raise AccountError(401, "not_signed_in", "sign in first: POST /api/auth/login")
    return Session(accounts.authenticate(token), token)


def _account(session: Annotated[Session, Depends(_session)]) -> Account:
    return session.account


CallerDep = Annotated[Caller, Depends(_caller)]
SignedIn = Annotated[Session, Depends(_session)]
CurrentAccount = Annotated[Account, Depends(_account)]
