"""The signed-in user's sessions and password: list and end sessions, change the password, and
recover a forgotten one by email."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, BackgroundTasks, Response

from accounts.errors import AccountError
from serve_app.dependencies import Accounts, ClientDep, SignedIn
from serve_app.errors import ERRORS, FORBIDDEN
from serve_app.routers.accounts import signed_out
from serve_app.schemas import (
    ChangePasswordRequest,
    ForgotRequest,
    MessageResponse,
    ResetRequest,
    SessionOut,
    SessionsResponse,
)

router = APIRouter(tags=["sessions"], responses=ERRORS)

FORGOT_ANSWER = ("if an account uses this email address, a link to choose a new password is on its way; "
                 "it works once, within 30 minutes")


@router.get("/api/auth/sessions", response_model=SessionsResponse)
def list_sessions(accounts: Accounts, session: SignedIn) -> SessionsResponse:
    """Every session of the user that has not expired, newest first; `current` marks this one."""
    return SessionsResponse(sessions=[SessionOut(id=str(s.id), created_at=s.created_at, last_used_at=s.last_used_at,
                                                 expires_at=s.expires_at, client=s.client, user_agent=s.user_agent,
                                                 current=s.current)
                                      for s in accounts.sessions.listed(session.account.id, session.token)])


@router.delete("/api/auth/sessions/{session_id}", status_code=204, response_class=Response)
def end_session(accounts: Accounts, session: SignedIn, session_id: str) -> Response:
    """End one session of the user (a stolen one, from another device); ending this one signs out."""
    try:
        target = uuid.UUID(session_id)
    except ValueError:
        raise AccountError(404, "not_found", f"no session {session_id} among yours") from None
    accounts.sessions.end(session.account.id, target)
    return Response(status_code=204)


@router.post("/api/auth/logout-all", status_code=204, response_class=Response)
def logout_all(accounts: Accounts, session: SignedIn) -> Response:
    """End every session of the user, this one included."""
    accounts.sessions.end_all(session.account.id)
    return signed_out(accounts)


@router.post("/api/auth/password/change", response_model=MessageResponse, responses=FORBIDDEN)
def change_password(accounts: Accounts, session: SignedIn, body: ChangePasswordRequest) -> MessageResponse:
    """A new password for a signed-in user who knows the current one; their other sessions end."""
    ended = accounts.recovery.change(session.account.id, body.current, body.new, session.token)
    return MessageResponse(message=f"password changed; {ended} other session(s) signed out")


@router.post("/api/auth/password/forgot", status_code=202, response_model=MessageResponse)
def forgot_password(accounts: Accounts, body: ForgotRequest, client: ClientDep,
                    background: BackgroundTasks) -> MessageResponse:
    """Email a reset link if the address has an account. The answer is the same either way, and
    the email goes out after it, so neither the answer nor its timing tells who has an account."""
    issued = accounts.recovery.forgot(body.email, client.address)
    if issued is not None:
        background.add_task(accounts.mailed.deliver, issued)
    return MessageResponse(message=FORGOT_ANSWER)


@router.post("/api/auth/password/reset", response_model=MessageResponse)
def reset_password(accounts: Accounts, body: ResetRequest) -> MessageResponse:
    """Set a new password with the emailed link (`#reset=<token>`, once, within 30 minutes);
    every session of the account ends."""
    accounts.recovery.reset(body.token, body.password)
    return MessageResponse(message="password changed; every session was signed out: sign in with the new password")
