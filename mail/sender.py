"""Emails through the official `resend` client, each sent at most once.

The idempotency key of a send names what it is about (an alert log's id, an account token's
id), so a retry after a crash, or two processes sending the same one at the same moment, is the
same email to the provider. Without a key nothing leaves the machine: the email is logged and,
where an outbox folder is configured (`EMAIL_OUTBOX`), written there whole, one JSON file per
idempotency key, so that a local install can still follow a verification or reset link.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

import resend
from resend.exceptions import ResendError

from config import EmailSettings, secret
from storage.location import Location

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
            resend.api_key = secret(settings.api_key)
            if settings.api_base:
                resend.api_url = settings.api_base

    @property
    def channel(self) -> str:
        return "email" if self.settings.api_key else "log"

    def send(self, email: Email) -> Delivery:
        if not self.settings.api_key:
            return self._keep(email)
        try:
            answer = resend.Emails.send({"from": self.settings.sender, "to": [email.to], "subject": email.subject,
                                         "text": email.text}, {"idempotency_key": email.idempotency_key})
        except (ResendError, OSError, ValueError) as exc:
            log.warning("email %s failed: %s", email.idempotency_key, exc)
            return Delivery(False, detail=f"send failed: {type(exc).__name__}")
        return Delivery(True, provider_id=str(answer.get("id")) if hasattr(answer, "get") else None)

    def _keep(self, email: Email) -> Delivery:
        """No provider: the log says an email was due; the outbox, if any, holds it whole."""
        if not self.settings.outbox_dir:
            log.info("email to %s: %s (%s)", email.to, email.subject, NO_PROVIDER)
            return Delivery(False, detail=NO_PROVIDER)
        outbox = Location.of(self.settings.outbox_dir)
        path = outbox.child(f"{email.idempotency_key}.json")
        body = {"from": self.settings.sender, **asdict(email)}
        outbox.write_bytes(path, json.dumps(body, indent=1).encode())  # atomic; the same key, the same file
        log.info("email to %s: %s (%s; written to %s)", email.to, email.subject, NO_PROVIDER, path)
        return Delivery(False, detail=f"{NO_PROVIDER}; written to the outbox")
