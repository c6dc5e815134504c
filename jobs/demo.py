"""`make demo`: the whole system on the embedded defaults, in a few minutes.

It trains on a SMALLER synthetic universe than production (the top 30 of the 600 synthetic coins,
timeframes 1h and 1d, fewer trees) so that it finishes on a 2-core machine; production runs
`jobs.weekly_training` with the top 500 and all five timeframes. Then it starts the HTTP service
(`python -m serve_app`), fetches a forecast over HTTP, prints it, walks an account, the track
record and the live candle socket, and stops the service.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from config import settings_or_exit

TOP, TIMEFRAMES = 30, "1h,1d"


def _http(method: str, url: str, body: dict | None = None, timeout: float = 60, token: str | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _print_forecast(answer: dict) -> None:
    print(f"prediction {answer['prediction_id']}  model {answer['model_version']}  direction {answer['direction']}  "
          f"confidence {answer['confidence_avg']:.3f}  key indicators: {', '.join(answer['key_indicators'])}")
    print(f"{'step':>4} {'timestamp':<26} {'open':>12} {'high':>12} {'low':>12} {'close':>12} {'80% band':>27} {'conf':>6} dir")
    for s in answer["steps"]:
        print(f"{s['step']:>4} {s['timestamp']:<26} {s['open']:>12.6g} {s['high']:>12.6g} {s['low']:>12.6g} "
              f"{s['close']:>12.6g} {s['lower']:>13.6g}-{s['upper']:<13.6g} {s['confidence']:>6.3f} {s['direction']}")


def _signed_in_tour(base: str, symbol: str) -> dict:
    """Register a throw-away demo account, sign in, forecast with the token; print the commands."""
    email, password = f"demo-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(12)
    _http("POST", f"{base}/api/auth/register", {"email": email, "password": password})
    token = _http("POST", f"{base}/api/auth/login", {"email": email, "password": password})["token"]
    answer = _http("POST", f"{base}/api/predictions/generate", {"symbol": symbol, "timeframe": "1d"}, token=token)
    usage = _http("GET", f"{base}/api/me", token=token)["usage"]
    print(f"\nsigned in as {email} (free tier): the same forecast, cached={answer['cached']}; "
          f"{usage['api_calls']} of {usage['limit']} forecasts used today")
    print("\nto use the API with an account yourself:")
    print(f"  curl -s -X POST {base}/api/auth/register -H 'content-type: application/json' "
          f"-d '{{\"email\": \"you@example.com\", \"password\": \"a long password\"}}'")
    print(f"  TOKEN=$(curl -s -X POST {base}/api/auth/login -H 'content-type: application/json' "
          f"-d '{{\"email\": \"you@example.com\", \"password\": \"a long password\"}}' | python3 -c "
          f"'import json,sys; print(json.load(sys.stdin)[\"token\"])')")
    print(f"  curl -s -X POST {base}/api/predictions/generate -H \"Authorization: Bearer $TOKEN\" "
          f"-H 'content-type: application/json' -d '{{\"symbol\": \"{symbol}\", \"timeframe\": \"1d\"}}'")
    print(f"  curl -s {base}/api/me -H \"Authorization: Bearer $TOKEN\"")
    return answer


def _emailed_link(outbox: Path, to: str, fragment: str, seconds: float = 20) -> str | None:
    """The newest link of a kind in the outbox's emails to `to` (emails go out after the answer)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        links = []
        for path in sorted(outbox.glob("account-token-*.json"), key=lambda p: p.stat().st_mtime):
            email = json.loads(path.read_text())
            found = re.search(rf"#{fragment}=([A-Za-z0-9_-]+)", email["text"]) if email["to"] == to else None
            links += [found.group(1)] if found else []
        if links:
            return links[-1]
        time.sleep(0.5)
    return None


def _delete(url: str, body: dict, token: str) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="DELETE",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return int(response.status)


def _account_tour(base: str, outbox: Path | None) -> None:
    """An account's life: verify the address by the emailed link, see the sessions, reset a
    forgotten password, delete the account. Without an email provider the links are read from
    the outbox folder, as a person would read them from their inbox."""
    email, password = f"demo-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(12)
    _http("POST", f"{base}/api/auth/register", {"email": email, "password": password})
    print(f"\naccounts: registered {email}; the verification email ", end="")
    if outbox is None:
        print("went to your email provider (RESEND_API_KEY is set); the rest of this walk-through needs the "
              "outbox, so it stops here")
        return
    verify = _emailed_link(outbox, email, "verify")
    if verify is None:
        raise SystemExit(f"demo: no verification email for {email} in {outbox}")
    print(f"is in {outbox}/ (no email provider configured): {base}/#verify=<token>")
    _http("POST", f"{base}/api/auth/verify", {"token": verify})
    token = _http("POST", f"{base}/api/auth/login", {"email": email, "password": password})["token"]
    print(f"  followed it: email_verified = {_http('GET', f'{base}/api/me', token=token)['user']['email_verified']}")
    sessions = _http("GET", f"{base}/api/auth/sessions", token=token)["sessions"]
    print(f"  GET /api/auth/sessions: {len(sessions)} session(s), this one current = {sessions[0]['current']}")
    _http("POST", f"{base}/api/auth/password/forgot", {"email": email})
    reset = _emailed_link(outbox, email, "reset")
    if reset is None:
        raise SystemExit(f"demo: no password-reset email for {email} in {outbox}")
    new_password = secrets.token_urlsafe(12)
    _http("POST", f"{base}/api/auth/password/reset", {"token": reset, "password": new_password})
    try:
        _http("GET", f"{base}/api/me", token=token)
        raise SystemExit("demo: the session outlived a password reset")
    except urllib.error.HTTPError as exc:
        ended = exc.code == 401
    print(f"  forgot password -> emailed link -> new password: the old session ended ({'401' if ended else '?'})")
    token = _http("POST", f"{base}/api/auth/login", {"email": email, "password": new_password})["token"]
    status = _delete(f"{base}/api/me", {"password": new_password}, token)
    print(f"  DELETE /api/me: {status}; the account, its sessions and its objects are gone, its forecasts stay in "
          "the ledger without an owner")


def _track_record_tour(base: str) -> None:
    """The demo's forecasts in the public ledger: the head, the newest entry recomputed here as
    anyone could, then the whole chain by `jobs.verify_ledger`."""
    head = _http("GET", f"{base}/api/ledger/head")
    if head["seq"] == 0:  # every forecast so far came from a cache filled before the ledger existed
        print("\nthe track record: no forecast entered yet")
        return
    entry = _http("GET", f"{base}/api/ledger/{head['seq']}")
    recomputed = hashlib.sha256((entry["canonical_json"] + entry["prev_hash"]).encode()).hexdigest()
    print(f"\nthe track record: {head['seq']} forecast(s) entered when made; head {head['hash']}")
    print(f"  GET {base}/api/ledger/{head['seq']}: sha256(canonical_json + prev_hash) = {recomputed} "
          f"({'matches' if recomputed == entry['hash'] else 'DOES NOT MATCH'} the entry)")
    print("  the whole chain, recomputed from the database: python -m jobs.verify_ledger", flush=True)
    subprocess.run([sys.executable, "-m", "jobs.verify_ledger"], check=True)


def _live_tour(base: str, symbol: str, seconds: float = 30) -> None:
    """The live candle a page shows, read off the WebSocket as the page does: a few updates of
    the forming 1h candle, and the address to open it with."""
    from websockets.sync.client import connect

    url = base.replace("http", "ws", 1) + f"/api/ws/candles?symbol={symbol}&timeframe=1h"
    print(f"\nlive: {url}")
    closes: list[float] = []
    deadline = time.time() + seconds
    try:
        with connect(url, open_timeout=30) as ws:
            while len(closes) < 4 and time.time() < deadline:
                message = json.loads(ws.recv(timeout=max(deadline - time.time(), 0.1)))
                if message["type"] == "status":
                    print(f"  status {message['status']}: {message['message']}")
                elif message["type"] == "candle":
                    candle = message["candle"]
                    closes.append(candle["close"])
                    print(f"  {'closed' if message['closed'] else 'forming'} {candle['timestamp']}  open {candle['open']:.6g}  "
                          f"high {candle['high']:.6g}  low {candle['low']:.6g}  close {candle['close']:.6g}", flush=True)
                elif message["type"] == "error":
                    print(f"  refused: {message['error']['message']}")
                    return
    except (OSError, TimeoutError) as exc:
        print(f"  the live socket did not answer ({type(exc).__name__}); the page shows the closed candles only")
        return
    moved = len(set(closes)) > 1
    print(f"  the forming candle {'moved' if moved else 'did not move'} over {len(closes)} updates; the page's last candle "
          "follows the same socket", flush=True)


SERVICE_LOG = Path("var/demo-service.log")  # the service's own lines, apart from the demo's story


def _wait_for(base: str, server: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if server.poll() is not None:
            tail = "".join(SERVICE_LOG.read_text(errors="replace").splitlines(keepends=True)[-20:])
            raise SystemExit(f"demo: the HTTP service exited; the end of {SERVICE_LOG}:\n{tail}")
        try:
            health = _http("GET", f"{base}/api/health", timeout=5)
            if any(health["models"].values()):
                return
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            pass
        time.sleep(2)
    raise SystemExit(f"demo: the HTTP service did not answer at {base} within {seconds:.0f}s")


def main() -> None:
    settings = settings_or_exit()
    started = time.perf_counter()
    print(f"demo: market source {settings.market_source.kind!r}; training on a smaller universe than production "
          f"(top {TOP} symbols, timeframes {TIMEFRAMES}, the recursive model only with 80 trees) so it fits a few "
          "minutes on 2 cores\n", flush=True)
    weekly = [sys.executable, "-m", "jobs.weekly_training", "--top", str(TOP), "--timeframes", TIMEFRAMES,
              "--n-estimators", "80", "--max-depth", "6", "--origins", "150", "--model", "xgboost"]
    if subprocess.run(weekly).returncode != 0:
        raise SystemExit("demo: weekly training failed")
    base = f"http://{settings.serve_host}:{settings.serve_port}"
    SERVICE_LOG.parent.mkdir(parents=True, exist_ok=True)
    print(f"\ndemo: starting the HTTP service on {base} (`python -m serve_app`; its request log and errors go "
          f"to {SERVICE_LOG})", flush=True)
    log = SERVICE_LOG.open("w")
    server = subprocess.Popen([sys.executable, "-m", "serve_app"], start_new_session=True, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        _wait_for(base, server)
        symbol = _http("GET", f"{base}/api/symbols/search?q=a&limit=1")["results"][0]["ticker"]
        print(f"\nPOST {base}/api/predictions/generate {{\"symbol\": \"{symbol}\", \"timeframe\": \"1d\"}}  (anonymous)")
        try:
            _print_forecast(_http("POST", f"{base}/api/predictions/generate", {"symbol": symbol, "timeframe": "1d"}))
            anonymous_done = True
        except urllib.error.HTTPError as exc:
            if exc.code != 429:
                raise
            print(f"anonymous quota spent for today: {json.loads(exc.read())['error']['message']}")
            anonymous_done = False
        answer = _signed_in_tour(base, symbol)
        if not anonymous_done:
            _print_forecast(answer)
        _account_tour(base, None if settings.email.api_key else Path(settings.email.outbox_dir or "./var/outbox"))
        _track_record_tour(base)
        _live_tour(base, symbol)
        page = f"{base}/?symbol={symbol}&timeframe=1d"
        print(f"\ndemo finished in {time.perf_counter() - started:.0f}s")
        if sys.stdin.isatty():  # a person is watching: keep serving the page until Ctrl-C
            print(f"\nthe forecast on a chart: {page}\n(the service keeps running; Ctrl-C stops it)", flush=True)
            try:
                server.wait()
            except KeyboardInterrupt:
                pass
        else:
            print(f"\nthe page (serve it again with `python -m serve_app`): {page}", flush=True)
    finally:
        server.send_signal(signal.SIGINT)  # like Ctrl-C: the service shuts Serve and its local Ray down
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


if __name__ == "__main__":
    main()
