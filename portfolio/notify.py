"""Alert emails through the official `resend` client, each sent at most once.

The idempotency key of a send is the alert log's id, so a retry after a crash, or a second
scanner sending the same log at the same moment, is the same email to the provider. Without a
key the notification goes to the log and its row says why it was not sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import resend
from resend.exceptions import ResendError

from config import EmailSettings

log = logging.getLogger(__name__)

NO_PROVIDER = "not sent: no email provider configured"


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    idempotency_key: str


@dataclass(frozen=True)
class Delivery:
    sent: bool
    provider_id: str | None = None
    detail: str | None = None  # why it was not sent


class EmailNotifier:
    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings
        if settings.api_key:
            resend.api_key = settings.api_key
            if settings.api_base:
                resend.api_url = settings.api_base

    @property
    def channel(self) -> str:
        return "email" if self.settings.api_key else "log"

    def send(self, email: Email) -> Delivery:
        if not self.settings.api_key:
            log.info("alert for %s: %s (%s)", email.to, email.subject, NO_PROVIDER)
            return Delivery(False, detail=NO_PROVIDER)
        try:
            answer = resend.Emails.send({"from": self.settings.sender, "to": [email.to], "subject": email.subject,
                                         "text": email.text}, {"idempotency_key": email.idempotency_key})
        except (ResendError, OSError, ValueError) as exc:
            log.warning("alert email %s failed: %s", email.idempotency_key, exc)
            return Delivery(False, detail=f"send failed: {type(exc).__name__}")
        return Delivery(True, provider_id=str(answer.get("id")) if hasattr(answer, "get") else None)
