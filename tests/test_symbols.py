"""A coin typed the way a person writes it resolves to its listed symbol, in one place for the
page's Enter, the forecast, the candles and the portfolio; an ambiguous text lists the coins it
fits, an unknown one says what to type, and neither is taken as a symbol."""

from __future__ import annotations

import pytest

from predictions.symbols import coin_of, spellings
from storage.db import session_scope
from storage.schema import Symbol
from tests.conftest import bearer, client_for, register_and_login

NAMED = [("X:BTCUSD", "Bitcoin"), ("X:BCHUSD", "Bitcoin Cash"), ("X:SOLUSD", "Solana"), ("X:SOLOUSD", "Sologenic")]


def test_the_ways_people_write_a_coin() -> None:
    for text in ("btc", "BTC", " BTC-USD ", "btc/usdt", "x:btcusd", "BTC_USDC", "btc usd", "X:BTCUSD"):
        assert "X:BTCUSD" in spellings(text) and coin_of(text) == "BTC", text
    assert spellings("X:BTCUSD") == ["X:BTCUSD"]
    assert coin_of("usd") == "USD" and coin_of("X:1INCHUSD") == "1INCH"


def _listed(world) -> None:
    with session_scope(world["engine"]) as s:
        for rank, (ticker, name) in enumerate(NAMED, 10):
            s.add(Symbol(ticker=ticker, name=name, volume_rank=rank))
        s.add(Symbol(ticker="X:GONEUSD", name="Gone", volume_rank=None, is_active=False))


@pytest.mark.parametrize("text, ticker", [("btc", "X:BTCUSD"), ("BTC-USD", "X:BTCUSD"), ("btc/usdt", "X:BTCUSD"),
                                          ("x:btcusd", "X:BTCUSD"), ("Bitcoin", "X:BTCUSD"), ("bitcoin cash", "X:BCHUSD"),
                                          ("sol", "X:SOLUSD"), ("SOLO", "X:SOLOUSD"), ("sologen", "X:SOLOUSD")])
def test_a_coin_written_any_way_resolves_to_its_symbol(world, text: str, ticker: str) -> None:
    _listed(world)
    answer = client_for(world).get("/api/symbols/resolve", params={"q": text})
    assert answer.status_code == 200 and answer.json()["ticker"] == ticker, answer.text


def test_an_ambiguous_or_unknown_coin_is_refused_with_what_to_do(world) -> None:
    _listed(world)
    client = client_for(world)
    several = client.get("/api/symbols/resolve", params={"q": "bitco"})
    assert several.status_code == 404 and several.json()["error"]["code"] == "ambiguous_symbol"
    assert several.json()["candidates"] == ["X:BTCUSD", "X:BCHUSD"]
    assert "X:BTCUSD (Bitcoin)" in several.json()["error"]["message"]
    none = client.get("/api/symbols/resolve", params={"q": "zzzz"})
    assert none.status_code == 404 and none.json()["error"]["code"] == "unknown_symbol"
    assert "type its ticker" in none.json()["error"]["message"] and "/api/" not in none.json()["error"]["message"]
    gone = client.get("/api/symbols/resolve", params={"q": "gone"})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "inactive_symbol"
    assert client.get("/api/symbols/resolve", params={"q": ""}).status_code == 422


def test_the_forecast_candles_and_portfolio_read_a_coin_written_any_way(world) -> None:
    client = client_for(world)
    ticker = world["tickers"][0]
    typed = ticker[2:-3].lower() + "-usd"  # "X:RADE2USD" written as "rade2-usd"
    answer = client.post("/api/predictions/generate", json={"symbol": typed, "timeframe": "1d", "num_steps": 2})
    assert answer.status_code == 200 and answer.json()["symbol"] == ticker, answer.text
    assert client.get("/api/candles", params={"symbol": typed, "limit": 5}).json()["symbol"] == ticker
    auth = bearer(register_and_login(client, "typed@example.com"))
    alert = client.post("/api/alerts", json={"symbol": ticker[2:-3].lower(), "condition_type": "above",
                                              "target_price": 1.0}, headers=auth)
    assert alert.status_code == 201 and alert.json()["symbol"] == ticker, alert.text
    unknown = client.post("/api/alerts", json={"symbol": "zzzz", "condition_type": "above", "target_price": 1.0},
                          headers=auth)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_symbol"
