"""A loopback HTTP server that answers like Stripe's REST API, for the official `stripe` client.

It serves the documented shapes of the calls billing makes — `POST /v1/customers`,
`POST /v1/checkout/sessions`, `POST /v1/billing_portal/sessions`, and `DELETE` (cancel) and `GET`
of `/v1/subscriptions/{id}`; a second cancel is refused as Stripe refuses it — from form-encoded bodies, checks
the Bearer secret key (401 in Stripe's error shape otherwise), honours `Idempotency-Key` (the same
key answers the same object), records every request, and can fail the next N calls with a 500.
"""

from __future__ import annotations

import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl

from tests.loopback import LoopbackServer, send_json


def _unflatten(pairs: list[tuple[str, str]]) -> dict:
    """Stripe's form encoding (`line_items[0][price]=...`) back into nested dicts and lists."""
    root: dict = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    def listify(node):  # {"0": ..., "1": ...} -> [...]
        if isinstance(node, dict):
            node = {k: listify(v) for k, v in node.items()}
            if node and all(k.isdigit() for k in node):
                return [node[k] for k in sorted(node, key=int)]
        return node
    return listify(root)


class FakeStripe(LoopbackServer):
    def __init__(self, api_key: str = "sk_test_loopback") -> None:
        self.api_key = api_key
        self.requests: list[tuple[str, str, dict, dict]] = []  # (method, path, body, headers)
        self.fail_next = 0
        self._idempotent: dict[str, dict] = {}
        self.cancelled: list[str] = []  # subscriptions cancelled, once each
        self._lock = threading.Lock()
        self._start_server()

    def calls(self, path: str) -> list[dict]:
        return [body for _, p, body, _ in self.requests if p == path]

    def _answer(self, path: str, body: dict) -> tuple[int, dict]:
        now = int(time.time())
        if path == "/v1/customers":
            return 200, {"id": f"cus_{secrets.token_hex(7)}", "object": "customer", "created": now,
                         "email": body.get("email"), "metadata": body.get("metadata", {}), "livemode": False}
        if path == "/v1/checkout/sessions":
            sid = f"cs_test_{secrets.token_hex(12)}"
            return 200, {"id": sid, "object": "checkout.session", "created": now, "mode": body.get("mode"),
                         "customer": body.get("customer"), "client_reference_id": body.get("client_reference_id"),
                         "metadata": body.get("metadata", {}), "status": "open", "payment_status": "unpaid",
                         "success_url": body.get("success_url"), "cancel_url": body.get("cancel_url"),
                         "url": f"https://checkout.stripe.com/c/pay/{sid}", "livemode": False}
        if path == "/v1/billing_portal/sessions":
            sid = f"bps_{secrets.token_hex(12)}"
            return 200, {"id": sid, "object": "billing_portal.session", "created": now,
                         "customer": body.get("customer"), "return_url": body.get("return_url"),
                         "url": f"https://billing.stripe.com/p/session/test_{sid}", "livemode": False}
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL (POST: {path})"}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                send_json(self, status, body, {"Request-Id": f"req_{secrets.token_hex(6)}"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = _unflatten(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake._lock:
                    fake.requests.append(("POST", self.path, body, headers))
                    failing = fake.fail_next > 0
                    fake.fail_next -= failing
                if headers.get("authorization") != f"Bearer {fake.api_key}":
                    return self._send(401, {"error": {"type": "invalid_request_error",
                                                      "message": "Invalid API Key provided"}})
                if failing:
                    return self._send(500, {"error": {"type": "api_error", "message": "loopback failure"}})
                key = headers.get("idempotency-key")
                with fake._lock:
                    if key and key in fake._idempotent:
                        return self._send(200, fake._idempotent[key])
                    status, answer = fake._answer(self.path, body)
                    if key and status == 200:
                        fake._idempotent[key] = answer
                self._send(status, answer)

            def _subscription_call(self, method: str) -> None:
                sub_id = self.path.rsplit("/", 1)[-1]
                with fake._lock:
                    fake.requests.append((method, self.path, {}, {k.lower(): v for k, v in self.headers.items()}))
                    failing = fake.fail_next > 0
                    fake.fail_next -= failing
                    done = sub_id in fake.cancelled
                    if method == "DELETE" and not done and not failing:
                        fake.cancelled.append(sub_id)
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    return self._send(401, {"error": {"type": "invalid_request_error",
                                                      "message": "Invalid API Key provided"}})
                if failing:
                    return self._send(500, {"error": {"type": "api_error", "message": "loopback failure"}})
                if method == "DELETE" and done:
                    return self._send(400, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                                      "message": "A canceled subscription can only update its "
                                                                 "cancellation_details and metadata."}})
                status = "canceled" if method == "DELETE" or done else "active"
                self._send(200, {"id": sub_id, "object": "subscription", "status": status, "livemode": False})

            def do_DELETE(self) -> None:
                self._subscription_call("DELETE")

            def do_GET(self) -> None:
                self._subscription_call("GET")

        return Handler
