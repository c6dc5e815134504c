"""A signed-in user's own watchlists, price alerts and trading plans; anyone else's are 404."""

from __future__ import annotations

from fastapi import APIRouter, Response

from accounts.service import Account
from clock import utc_now
from portfolio.alerts import AlertRule
from serve_app.dependencies import CurrentAccount, PortfolioDep
from serve_app.errors import CONFLICT, ERRORS, FORBIDDEN
from serve_app.schemas import (
    AlertCreate,
    AlertLogOut,
    AlertLogsResponse,
    AlertOut,
    AlertsResponse,
    AlertUpdate,
    PlanCreate,
    PlanOut,
    PlansResponse,
    PlanUpdate,
    ReorderRequest,
    WatchlistCreate,
    WatchlistItemCreate,
    WatchlistItemOut,
    WatchlistOut,
    WatchlistsResponse,
    WatchlistUpdate,
)

UNVERIFIED_ALERTS = ("alerts trigger, but no email is sent to an unverified address: follow the link we emailed "
                     "you, or ask for a new one (POST /api/auth/verify/resend)")

router = APIRouter(tags=["portfolio"], responses=ERRORS | CONFLICT | FORBIDDEN)
NO_CONTENT = {"status_code": 204, "response_class": Response}


# -- watchlists ---------------------------------------------------------------------------------
@router.get("/api/watchlists", response_model=WatchlistsResponse)
def list_watchlists(p: PortfolioDep, account: CurrentAccount) -> WatchlistsResponse:
    return WatchlistsResponse.model_validate({"watchlists": p.watchlists.list(account.id)})


@router.post("/api/watchlists", status_code=201, response_model=WatchlistOut)
def create_watchlist(p: PortfolioDep, account: CurrentAccount, body: WatchlistCreate) -> WatchlistOut:
    """A new watchlist; the first is the default, and at most one is."""
    return WatchlistOut.model_validate(p.watchlists.create(account.id, p.limits_of(account.tier), body.name,
                                                           body.is_default))


@router.get("/api/watchlists/{watchlist_id}", response_model=WatchlistOut)
def get_watchlist(p: PortfolioDep, account: CurrentAccount, watchlist_id: str) -> WatchlistOut:
    return WatchlistOut.model_validate(p.watchlists.get(account.id, watchlist_id))


@router.patch("/api/watchlists/{watchlist_id}", response_model=WatchlistOut)
def update_watchlist(p: PortfolioDep, account: CurrentAccount, watchlist_id: str, body: WatchlistUpdate) -> WatchlistOut:
    return WatchlistOut.model_validate(p.watchlists.update(account.id, watchlist_id, body.name, body.is_default))


@router.delete("/api/watchlists/{watchlist_id}", **NO_CONTENT)  # type: ignore[arg-type]
def delete_watchlist(p: PortfolioDep, account: CurrentAccount, watchlist_id: str) -> Response:
    p.watchlists.delete(account.id, watchlist_id)
    return Response(status_code=204)


@router.post("/api/watchlists/{watchlist_id}/items", status_code=201, response_model=WatchlistItemOut)
def add_watchlist_item(p: PortfolioDep, account: CurrentAccount, watchlist_id: str,
                       body: WatchlistItemCreate) -> WatchlistItemOut:
    """Add a symbol (409 if it is already there); at the end unless `position` says where."""
    return WatchlistItemOut.model_validate(p.watchlists.add_item(account.id, p.limits_of(account.tier), watchlist_id,
                                                                 body.symbol, body.position))


@router.patch("/api/watchlists/{watchlist_id}/items", response_model=WatchlistOut)
def reorder_watchlist(p: PortfolioDep, account: CurrentAccount, watchlist_id: str, body: ReorderRequest) -> WatchlistOut:
    """Set the positions of items in one request (all or nothing)."""
    return WatchlistOut.model_validate(p.watchlists.reorder(account.id, watchlist_id,
                                                            {i.item_id: i.position for i in body.positions}))


@router.delete("/api/watchlists/{watchlist_id}/items/{item_id}", **NO_CONTENT)  # type: ignore[arg-type]
def remove_watchlist_item(p: PortfolioDep, account: CurrentAccount, watchlist_id: str, item_id: str) -> Response:
    p.watchlists.remove_item(account.id, watchlist_id, item_id)
    return Response(status_code=204)


# -- price alerts -------------------------------------------------------------------------------
@router.get("/api/alerts", response_model=AlertsResponse)
def list_alerts(p: PortfolioDep, account: CurrentAccount) -> AlertsResponse:
    return AlertsResponse.model_validate({"alerts": p.alerts.list(account.id), "email_notice": _notice(account)})


def _notice(account: Account) -> str | None:
    return None if account.email_verified else UNVERIFIED_ALERTS


@router.post("/api/alerts", status_code=201, response_model=AlertOut)
def create_alert(p: PortfolioDep, account: CurrentAccount, body: AlertCreate) -> AlertOut:
    """A price alert: above, below or crossing `target_price`, until `expires_at`."""
    alert = AlertOut.model_validate(p.alerts.create(account.id, p.limits_of(account.tier),
                                                    AlertRule(**body.model_dump()), utc_now()))
    return alert.model_copy(update={"email_notice": _notice(account)})


@router.get("/api/alerts/{alert_id}", response_model=AlertOut)
def get_alert(p: PortfolioDep, account: CurrentAccount, alert_id: str) -> AlertOut:
    return AlertOut.model_validate(p.alerts.get(account.id, alert_id))


@router.patch("/api/alerts/{alert_id}", response_model=AlertOut)
def update_alert(p: PortfolioDep, account: CurrentAccount, alert_id: str, body: AlertUpdate) -> AlertOut:
    return AlertOut.model_validate(p.alerts.update(account.id, p.limits_of(account.tier), alert_id,
                                                   body.model_dump(exclude_unset=True), utc_now()))


@router.delete("/api/alerts/{alert_id}", **NO_CONTENT)  # type: ignore[arg-type]
def delete_alert(p: PortfolioDep, account: CurrentAccount, alert_id: str) -> Response:
    p.alerts.delete(account.id, alert_id)
    return Response(status_code=204)


@router.get("/api/alerts/{alert_id}/logs", response_model=AlertLogsResponse)
def alert_logs(p: PortfolioDep, account: CurrentAccount, alert_id: str) -> AlertLogsResponse:
    """Each trigger of the alert and what became of its notification."""
    return AlertLogsResponse(logs=[AlertLogOut.model_validate(row) for row in p.alerts.logs(account.id, alert_id)])


# -- trading plans ------------------------------------------------------------------------------
@router.get("/api/trading-plans", response_model=PlansResponse)
def list_plans(p: PortfolioDep, account: CurrentAccount) -> PlansResponse:
    return PlansResponse.model_validate({"trading_plans": p.plans.list(account.id)})


@router.post("/api/trading-plans", status_code=201, response_model=PlanOut)
def create_plan(p: PortfolioDep, account: CurrentAccount, body: PlanCreate) -> PlanOut:
    """A trading plan; `risk_reward` is computed from entry, target and stop."""
    return PlanOut.model_validate(p.plans.create(account.id, p.limits_of(account.tier), body.symbol,
                                                 body.model_dump(exclude={"symbol"}, exclude_unset=True)))


@router.get("/api/trading-plans/{plan_id}", response_model=PlanOut)
def get_plan(p: PortfolioDep, account: CurrentAccount, plan_id: str) -> PlanOut:
    return PlanOut.model_validate(p.plans.get(account.id, plan_id))


@router.patch("/api/trading-plans/{plan_id}", response_model=PlanOut)
def update_plan(p: PortfolioDep, account: CurrentAccount, plan_id: str, body: PlanUpdate) -> PlanOut:
    """Change a plan; `status: closed` sets `closed_at`."""
    return PlanOut.model_validate(p.plans.update(account.id, plan_id, body.model_dump(exclude_unset=True)))


@router.delete("/api/trading-plans/{plan_id}", **NO_CONTENT)  # type: ignore[arg-type]
def delete_plan(p: PortfolioDep, account: CurrentAccount, plan_id: str) -> Response:
    p.plans.delete(account.id, plan_id)
    return Response(status_code=204)
