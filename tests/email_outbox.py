"""The emails the service wrote to its outbox folder (`EMAIL_OUTBOX`), as a test reads them back."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path


def emailed_token(outbox: Path, to: str, fragment: str, wait_s: float = 30.0) -> str:
    """The token of the newest-found `#<fragment>=` link in an email to `to`; waits up to `wait_s`
    for the email (the service sends it after answering)."""
    deadline = time.time() + wait_s
    while time.time() < deadline:
        for path in outbox.glob("account-token-*.json"):
            email = json.loads(path.read_text())
            found = re.search(rf"#{fragment}=([A-Za-z0-9_-]+)", email["text"]) if email["to"] == to else None
            if found:
                return found.group(1)
        time.sleep(0.2)
    raise AssertionError(f"no '{fragment}' email to {to} in {outbox}")
