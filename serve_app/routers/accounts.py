"""Accounts: register (with the email verification it starts), sign in and out, who am I and
how much of today's quota is left, and deleting the account."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Response

from accounts.service import Account, Caller
from serve_app.dependencies import (
    SESSION_COOKIE,
    Accounts,
    ClientDep,
    CurrentAccount,
    SignedIn,
    SubscriptionCanceller,
)
from serve_app.errors import CONFLICT, ERRORS, FORBIDDEN, UPSTREAM
from serve_app.schemas import (
    LoginRequest,
    LoginResponse,
    MeResponse,
    MessageResponse,
    PasswordRequest,
    RegisterRequest,
    TokenRequest,
    UsageOut,
    UserOut,
)

router = APIRouter(tags=["accounts"], responses=ERRORS)


def user_out(account: Account) -> UserOut:
    return UserOut(id=str(account.id), email=account.email, name=account.name, tier=account.tier,
                   created_at=account.created_at, email_verified=account.email_verified)


def signed_out(accounts: Accounts) -> Response:
    """A 204 that also clears the `session` cookie."""
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=accounts.settings.cookie_secure)
    return response


@router.post("/api/auth/register", status_code=201, response_model=UserOut)
def register(accounts: Accounts, body: RegisterRequest, background: BackgroundTasks, client: ClientDep) -> UserOut:
    """Create an account on the free tier (password: 8 to 128 characters) and email a link that
    verifies the address; the email goes out after the answer."""
    registered = accounts.register(body.email, body.password, body.name, client)
    if registered.mail is not None:
        background.add_task(accounts.mailed.deliver, registered.mail)
    return user_out(registered.account)


@router.post("/api/auth/login", response_model=LoginResponse)
def login(accounts: Accounts, response: Response, body: LoginRequest, client: ClientDep) -> LoginResponse:
    """A new session: its token in the answer and in the httpOnly `session` cookie."""
    signed = accounts.login(body.email, body.password, client)
    response.set_cookie(SESSION_COOKIE, signed.token, max_age=accounts.settings.session_ttl_days * 86400,
                        httponly=True, samesite="lax", secure=accounts.settings.cookie_secure, path="/")
    return LoginResponse(token=signed.token, expires_at=signed.expires_at, user=user_out(signed.account))


@router.post("/api/auth/logout", status_code=204, response_class=Response)
def logout(accounts: Accounts, session: SignedIn) -> Response:
    """End the session the request carries (header or cookie)."""
    accounts.logout(session.token)
    return signed_out(accounts)


@router.post("/api/auth/verify", response_model=MessageResponse)
def verify_email(accounts: Accounts, body: TokenRequest) -> MessageResponse:
    """Follow the emailed link (`#verify=<token>`): the address is verified. Works once; no
    session needed, so the link can be opened on another device."""
    accounts.verification.confirm(body.token)
    return MessageResponse(message="your email address is verified")


@router.post("/api/auth/verify/resend", status_code=202, response_model=MessageResponse, responses=CONFLICT)
def resend_verification(accounts: Accounts, account: CurrentAccount, background: BackgroundTasks) -> MessageResponse:
    """Email a new verification link: at most one a minute and five a day."""
    issued = accounts.verification.resend(account.id, account.email, account.email_verified, account.created_at)
    background.add_task(accounts.mailed.deliver, issued)
    return MessageResponse(message=f"a new verification link is on its way to {account.email}")


@router.get("/api/me", response_model=MeResponse)
def me(accounts: Accounts, account: CurrentAccount) -> MeResponse:
    """The signed-in user, their tier and today's forecast usage."""
    usage = accounts.usage(Caller(account, ""))
    return MeResponse(user=user_out(account), tier=account.tier,
                      usage=UsageOut(date=usage.date.isoformat(), api_calls=usage.api_calls, limit=usage.limit,
                                     remaining=usage.remaining, reset_at=usage.reset_at))


@router.delete("/api/me", status_code=204, response_class=Response, responses=FORBIDDEN | UPSTREAM)
def delete_me(accounts: Accounts, account: CurrentAccount, body: PasswordRequest,
              cancel: SubscriptionCanceller) -> Response:
    """Delete the account (the password confirms it): a paid subscription is cancelled first;
    watchlists, alerts, plans and sessions go; forecasts and the track record stay, unowned."""
    accounts.close(account.id, body.password, cancel)
    return signed_out(accounts)
