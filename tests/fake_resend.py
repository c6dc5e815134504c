"""A loopback server that answers like Resend's `POST /emails` for the official `resend` client:
checks the Bearer key, records every email, honours `Idempotency-Key` (the same key is the same
email, sent once), and can fail the first N requests with a 500."""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler

from tests.loopback import LoopbackServer, send_json


class FakeResend(LoopbackServer):
    def __init__(self, api_key: str = "re_test_loopback", fail_first: int = 0) -> None:
        self.api_key, self.fail_first = api_key, fail_first
        self.delivered: list[dict] = []  # emails that were sent, once each
        self.requests = 0
        self._by_key: dict[str, str] = {}
        self._lock = threading.Lock()
        self._start_server()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: dict) -> None:
                send_json(self, status, body)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with fake._lock:
                    fake.requests += 1
                    failing = fake.fail_first > 0
                    fake.fail_first -= failing
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    return self._send(401, {"statusCode": 401, "name": "validation_error", "message": "API key is invalid"})
                if failing:
                    return self._send(500, {"statusCode": 500, "name": "application_error",
                                            "message": "loopback failure"})
                if self.path != "/emails":
                    return self._send(404, {"statusCode": 404, "name": "not_found", "message": "Not found"})
                key = self.headers.get("Idempotency-Key")
                with fake._lock:
                    if key and key in fake._by_key:
                        return self._send(200, {"id": fake._by_key[key]})
                    email_id = secrets.token_hex(8)
                    if key:
                        fake._by_key[key] = email_id
                    fake.delivered.append({**body, "id": email_id, "idempotency_key": key})
                self._send(200, {"id": email_id})

        return Handler
