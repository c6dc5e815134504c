"""Watchlists, alerts and trading plans: CRUD for their owner, 404 for everyone else, tier limits,
server-computed risk/reward, and bad input as clear 4xx. SQLite + in-process and PostgreSQL + Redis."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import bearer, client_for, register_and_login


def test_watchlists_crud_default_order_and_duplicates(world) -> None:
    client = client_for(world, LIMIT_WATCHLISTS_FREE="2", LIMIT_WATCHLIST_ITEMS_FREE="3")
    me = bearer(register_and_login(client, "wl@example.com"))
    first = client.post("/api/watchlists", json={"name": "Majors"}, headers=me)
    assert first.status_code == 201 and first.json()["is_default"] is True and first.json()["items"] == []
    second = client.post("/api/watchlists", json={"name": "Memes", "is_default": True}, headers=me).json()
    lists = client.get("/api/watchlists", headers=me).json()["watchlists"]
    assert [(w["name"], w["is_default"]) for w in lists] == [("Majors", False), ("Memes", True)]  # one default
    r = client.post("/api/watchlists", json={"name": "Third"}, headers=me)
    assert r.status_code == 403 and r.json()["error"]["code"] == "limit_reached"
    wid = first.json()["id"]
    t = world["tickers"]
    items = [client.post(f"/api/watchlists/{wid}/items", json={"symbol": s}, headers=me) for s in t[:3]]
    assert [i.status_code for i in items] == [201, 201, 201] and [i.json()["position"] for i in items] == [0, 1, 2]
    r = client.post(f"/api/watchlists/{wid}/items", json={"symbol": t[0]}, headers=me)
    assert r.status_code in (403, 409)  # full (3 allowed) or duplicate, never a 500
    client.delete(f"/api/watchlists/{wid}/items/{items[2].json()['id']}", headers=me)
    r = client.post(f"/api/watchlists/{wid}/items", json={"symbol": t[0]}, headers=me)
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_in_watchlist"
    r = client.post(f"/api/watchlists/{wid}/items", json={"symbol": "X:NOSUCHUSD"}, headers=me)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_symbol"
    ids = [i.json()["id"] for i in items[:2]]
    r = client.patch(f"/api/watchlists/{wid}/items", json={"positions": [{"item_id": ids[0], "position": 5},
                                                                          {"item_id": ids[1], "position": 1}]},
                     headers=me)
    assert r.status_code == 200 and [i["symbol"] for i in r.json()["items"]] == [t[1], t[0]]
    r = client.patch(f"/api/watchlists/{wid}", json={"name": "Renamed", "is_default": True}, headers=me)
    assert r.json()["name"] == "Renamed" and r.json()["is_default"] is True
    assert client.get(f"/api/watchlists/{second['id']}", headers=me).json()["is_default"] is False
    assert client.delete(f"/api/watchlists/{wid}", headers=me).status_code == 204
    assert client.get("/api/watchlists", headers=me).json()["watchlists"][0]["is_default"] is True  # taken over


def test_alerts_crud_limits_and_logs(world) -> None:
    client = client_for(world, LIMIT_ALERTS_FREE="2")
    me = bearer(register_and_login(client, "al@example.com"))
    t = world["tickers"]
    a = client.post("/api/alerts", json={"symbol": t[0], "condition_type": "above", "target_price": 123.5}, headers=me)
    assert a.status_code == 201 and a.json()["is_active"] is True and a.json()["symbol"] == t[0]
    later = (world["clock"].now + timedelta(days=400)).isoformat()
    b = client.post("/api/alerts", json={"symbol": t[1], "condition_type": "crossing", "target_price": 1e-5,
                                         "expires_at": later}, headers=me)
    assert b.status_code == 201
    r = client.post("/api/alerts", json={"symbol": t[2], "condition_type": "below", "target_price": 1}, headers=me)
    assert r.status_code == 403 and r.json()["error"]["code"] == "limit_reached"
    r = client.patch(f"/api/alerts/{a.json()['id']}", json={"is_active": False}, headers=me)
    assert r.json()["is_active"] is False
    assert client.post("/api/alerts", json={"symbol": t[2], "condition_type": "below", "target_price": 1},
                       headers=me).status_code == 201  # room again
    r = client.patch(f"/api/alerts/{a.json()['id']}", json={"is_active": True}, headers=me)
    assert r.status_code == 403  # reactivating respects the limit too
    r = client.patch(f"/api/alerts/{b.json()['id']}", json={"target_price": 2e-5}, headers=me)
    assert r.json()["target_price"] == pytest.approx(2e-5)
    assert client.get(f"/api/alerts/{b.json()['id']}/logs", headers=me).json() == {"logs": []}
    assert len(client.get("/api/alerts", headers=me).json()["alerts"]) == 3
    assert client.delete(f"/api/alerts/{a.json()['id']}", headers=me).status_code == 204
    assert client.get(f"/api/alerts/{a.json()['id']}", headers=me).status_code == 404


@pytest.mark.parametrize(("entry", "target", "stop", "side", "rr"), [
    (100.0, 130.0, 90.0, "long", 3.0),
    (100.0, 80.0, 110.0, "short", 2.0),
    (0.00001234, 0.00001534, 0.00001134, "long", 3.0),
])
def test_trading_plans_compute_risk_reward(world, entry, target, stop, side, rr) -> None:
    client = client_for(world)
    me = bearer(register_and_login(client, "tp@example.com"))
    r = client.post("/api/trading-plans", json={"symbol": world["tickers"][0], "title": "Breakout",
                                                "entry_price": entry, "target_price": target, "stop_loss": stop},
                    headers=me)
    assert r.status_code == 201, r.text
    assert r.json()["side"] == side and r.json()["risk_reward"] == pytest.approx(rr)
    pid = r.json()["id"]
    r = client.patch(f"/api/trading-plans/{pid}", json={"status": "closed"}, headers=me)
    assert r.json()["status"] == "closed" and r.json()["closed_at"]
    r = client.patch(f"/api/trading-plans/{pid}", json={"status": "active"}, headers=me)
    assert r.json()["closed_at"] is None
    wrong = stop * 1.5 if side == "long" else stop / 1.5  # the stop on the wrong side of the entry
    r = client.patch(f"/api/trading-plans/{pid}", json={"stop_loss": wrong}, headers=me)
    assert r.status_code == 422 and "stop" in r.json()["error"]["message"]
    assert client.get(f"/api/trading-plans/{pid}", headers=me).json()["stop_loss"] == pytest.approx(stop)


def test_every_route_refuses_another_users_objects(world) -> None:
    client = client_for(world)
    alice = bearer(register_and_login(client, "alice@example.com"))
    bob = bearer(register_and_login(client, "bob@example.com"))
    t = world["tickers"][0]
    wl = client.post("/api/watchlists", json={"name": "A"}, headers=alice).json()
    item = client.post(f"/api/watchlists/{wl['id']}/items", json={"symbol": t}, headers=alice).json()
    alert = client.post("/api/alerts", json={"symbol": t, "condition_type": "above", "target_price": 5},
                        headers=alice).json()
    plan = client.post("/api/trading-plans", json={"symbol": t, "title": "P"}, headers=alice).json()
    attempts = [
        ("get", f"/api/watchlists/{wl['id']}", None), ("patch", f"/api/watchlists/{wl['id']}", {"name": "B"}),
        ("delete", f"/api/watchlists/{wl['id']}", None),
        ("post", f"/api/watchlists/{wl['id']}/items", {"symbol": t}),
        ("patch", f"/api/watchlists/{wl['id']}/items", {"positions": [{"item_id": item["id"], "position": 3}]}),
        ("delete", f"/api/watchlists/{wl['id']}/items/{item['id']}", None),
        ("get", f"/api/alerts/{alert['id']}", None), ("patch", f"/api/alerts/{alert['id']}", {"target_price": 9}),
        ("delete", f"/api/alerts/{alert['id']}", None), ("get", f"/api/alerts/{alert['id']}/logs", None),
        ("get", f"/api/trading-plans/{plan['id']}", None),
        ("patch", f"/api/trading-plans/{plan['id']}", {"title": "Mine now"}),
        ("delete", f"/api/trading-plans/{plan['id']}", None),
    ]
    for method, path, body in attempts:
        r = client.request(method.upper(), path, json=body, headers=bob)
        assert r.status_code == 404 and r.json()["error"]["code"].startswith("unknown_"), (method, path, r.text)
        assert client.request(method.upper(), path, json=body).status_code == 401  # and nobody anonymous
    assert client.get("/api/watchlists", headers=bob).json() == {"watchlists": []}
    assert client.get("/api/alerts", headers=bob).json()["alerts"] == []
    assert client.get("/api/trading-plans", headers=bob).json() == {"trading_plans": []}
    # Alice's objects are untouched
    assert client.get(f"/api/watchlists/{wl['id']}", headers=alice).json()["name"] == "A"
    assert client.get(f"/api/alerts/{alert['id']}", headers=alice).json()["target_price"] == 5
    assert client.get(f"/api/trading-plans/{plan['id']}", headers=alice).json()["title"] == "P"


BAD = [
    ("post", "/api/alerts", {"symbol": "X:A", "condition_type": "above", "target_price": 0}, 422),
    ("post", "/api/alerts", {"symbol": "X:A", "condition_type": "above", "target_price": -3}, 422),
    ("post", "/api/alerts", {"symbol": "X:A", "condition_type": "above", "target_price": "12"}, 422),
    ("post", "/api/alerts", {"symbol": "X:A", "condition_type": "sideways", "target_price": 1}, 422),
    ("post", "/api/alerts", {"symbol": "X:A", "condition_type": "above", "target_price": 1,
                             "expires_at": "2001-01-01T00:00:00Z"}, 422),
    ("post", "/api/alerts", {"symbol": "X:NOSUCHUSD", "condition_type": "above", "target_price": 1}, 404),
    ("post", "/api/watchlists", {"name": "n" * 10_000}, 422),
    ("post", "/api/watchlists", {"name": ""}, 422),
    ("post", "/api/trading-plans", {"symbol": "X:A", "title": "t" * 10_000}, 422),
    ("post", "/api/trading-plans", {"symbol": "X:A", "title": "t", "notes": "n" * 10_000}, 422),
    ("post", "/api/trading-plans", {"symbol": "X:A", "title": "t", "entry_price": 10, "target_price": 10,
                                    "stop_loss": 9}, 422),
]


def test_bad_portfolio_input_is_a_clear_4xx(world) -> None:
    client = client_for(world)
    me = bearer(register_and_login(client, "bad@example.com"))
    t = world["tickers"][0]
    for method, path, body, status in BAD:
        body = {**body, "symbol": t} if body.get("symbol") == "X:A" else body
        r = client.request(method.upper(), path, json=body, headers=me)
        assert r.status_code == status and r.json()["error"]["message"], (path, body, r.text)
    # NaN is not a price (Python's JSON writes it; the API refuses it)
    r = client.post("/api/alerts", content=b'{"symbol": "%s", "condition_type": "above", "target_price": NaN}'
                    % t.encode(), headers={**me, "content-type": "application/json"})
    assert r.status_code == 422
    assert client.get("/api/alerts", headers=me).json()["alerts"] == []


def test_a_plan_refuses_nulls_extreme_prices_control_characters_and_too_many_plans(world) -> None:
    """Every field of a plan validated (a 422, never a 500): null where the column is NOT NULL,
    prices beyond what the column holds, NUL and other control characters, notes too long; and
    no more plans than the tier allows."""
    client = client_for(world, LIMIT_PLANS_FREE="3")
    me = bearer(register_and_login(client, "plans@example.com"))
    t = world["tickers"][0]
    plan = client.post("/api/trading-plans", json={"symbol": t, "title": "Swing", "entry_price": 1.0}, headers=me)
    assert plan.status_code == 201, plan.text
    url = f"/api/trading-plans/{plan.json()['id']}"
    for body in ({"title": None}, {"status": None}, {"title": "a\x00b"}, {"notes": "x\x00y"}, {"notes": "n" * 5001},
                 {"entry_price": 1e308, "stop_loss": 1e-300}, {"target_price": 1e30}, {"stop_loss": 1e-30},
                 {"title": " "}, {"entry_price": -1}):
        r = client.patch(url, json=body, headers=me)
        assert r.status_code == 422 and r.json()["error"]["message"], (body, r.text)
    r = client.post("/api/trading-plans", json={"symbol": t, "title": "x", "notes": "bad\x07bell"}, headers=me)
    assert r.status_code == 422
    kept = client.get(url, headers=me).json()
    assert kept["title"] == "Swing" and kept["status"] is not None and kept["entry_price"] == 1.0
    ok = client.patch(url, json={"notes": "line one\nline two\ttabbed", "entry_price": None}, headers=me)
    assert ok.status_code == 200 and ok.json()["entry_price"] is None  # a price may be cleared, a title not
    for i in range(2):
        assert client.post("/api/trading-plans", json={"symbol": t, "title": f"p{i}"}, headers=me).status_code == 201
    r = client.post("/api/trading-plans", json={"symbol": t, "title": "one too many"}, headers=me)
    assert r.status_code == 403 and r.json()["error"]["code"] == "limit_reached"
