"""Accounts: register, sign in and out, who am I and how much of today's quota is left."""

from __future__ import annotations

from fastapi import APIRouter, Response

from accounts.service import Account, Caller
from serve_app.dependencies import SESSION_COOKIE, Accounts, CurrentAccount, SignedIn
from serve_app.errors import CONFLICT, ERRORS
from serve_app.schemas import LoginRequest, LoginResponse, MeResponse, RegisterRequest, UsageOut, UserOut

router = APIRouter(tags=["accounts"], responses=ERRORS)


def user_out(account: Account) -> UserOut:
    return UserOut(id=str(account.id), email=account.email, name=account.name, tier=account.tier,  # type: ignore[arg-type]
                   created_at=account.created_at)


@router.post("/api/auth/register", status_code=201, response_model=UserOut, responses=CONFLICT)
def register(accounts: Accounts, body: RegisterRequest) -> UserOut:
    """Create an account on the free tier (password: 8 to 128 characters)."""
    return user_out(accounts.register(body.email, body.password, body.name))


@router.post("/api/auth/login", response_model=LoginResponse)
def login(accounts: Accounts, response: Response, body: LoginRequest) -> LoginResponse:
    """A new session: its token in the answer and in the httpOnly `session` cookie."""
    signed = accounts.login(body.email, body.password)
    response.set_cookie(SESSION_COOKIE, signed.token, max_age=accounts.settings.session_ttl_days * 86400,
                        httponly=True, samesite="lax", secure=accounts.settings.cookie_secure, path="/")
    return LoginResponse(token=signed.token, expires_at=signed.expires_at, user=user_out(signed.account))


@router.post("/api/auth/logout", status_code=204, response_class=Response)
def logout(accounts: Accounts, session: SignedIn) -> Response:
    """End the session the request carries (header or cookie)."""
    accounts.logout(session.token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=accounts.settings.cookie_secure)
    return response


@router.get("/api/me", response_model=MeResponse)
def me(accounts: Accounts, account: CurrentAccount) -> MeResponse:
    """The signed-in user, their tier and today's forecast usage."""
    usage = accounts.usage(Caller(account, ""))
    return MeResponse(user=user_out(account), tier=account.tier,  # type: ignore[arg-type]
                      usage=UsageOut(date=usage.date.isoformat(), api_calls=usage.api_calls, limit=usage.limit,
                                     remaining=usage.remaining, reset_at=usage.reset_at))
