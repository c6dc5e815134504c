"""The public track record: the scores (pure), the endpoint over the ledger's scored forecasts on
both backends, and the page in a real browser."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn

from accuracy.track_record import NOT_ENOUGH, diebold_mariano
from accuracy.tracker import track
from storage.cache import fresh_candles_key
from tests.conftest import START, _free_port, client_for
from training.scores import interval_score, pinball_loss


def test_the_interval_score_charges_width_and_misses() -> None:
    lower, upper = np.array([-1.0, -1.0, -1.0]), np.array([1.0, 1.0, 1.0])
    assert interval_score(lower, upper, np.array([0.0, 2.0, -1.5])).tolist() == [2.0, 12.0, 7.0]
    # a band that is too wide scores worse than one that is right, though it covers more
    rng = np.random.default_rng(0)
    y = rng.normal(size=20_000)
    right = interval_score(np.full_like(y, -1.2816), np.full_like(y, 1.2816), y).mean()
    wide = interval_score(np.full_like(y, -3.0), np.full_like(y, 3.0), y).mean()
    narrow = interval_score(np.full_like(y, -0.5), np.full_like(y, 0.5), y).mean()
    assert right < wide and right < narrow
    # the band's ends are the 10 % and 90 % quantiles: their pinball losses are lowest there too
    for level, end in ((0.1, -1.2816), (0.9, 1.2816)):
        at = pinball_loss(np.full_like(y, end), y, level).mean()
        assert at < pinball_loss(np.full_like(y, end - 0.5), y, level).mean()
        assert at < pinball_loss(np.full_like(y, end + 0.5), y, level).mean()


def test_diebold_mariano_finds_a_real_difference_and_not_a_fake_one() -> None:
    rng = np.random.default_rng(1)
    blocks = np.repeat(np.arange(60), 20)
    common = np.repeat(rng.normal(size=60), 20)  # coins move together within a block
    better = -0.2 + common * 0.1 + rng.normal(scale=0.5, size=len(blocks))
    stat, p = diebold_mariano(better, blocks, lag=1)
    assert stat < -3 and p < 0.01
    noise = common + rng.normal(scale=0.5, size=len(blocks))
    stat, p = diebold_mariano(noise, blocks, lag=1)
    assert p > 0.05
    assert diebold_mariano(noise[:40], blocks[:40], lag=1) is None  # two blocks: no variance to speak of


def _scored_world(world: dict[str, Any]) -> Any:
    """A forecast of each coin on each of the 60 days before START, scored against the candles
    that then closed (`jobs.track_accuracy`'s tracker)."""
    client = client_for(world, QUOTA_ANONYMOUS="100000")
    for day in range(60, 0, -1):
        world["clock"].now = START - timedelta(days=day)
        for ticker in world["tickers"]:
            world["cache"].delete(fresh_candles_key(ticker, "1d"))  # the cache keeps real time, not the world's
            assert client.post("/ml/predict", json={"symbol": ticker, "timeframe": "1d"}).status_code == 200
    world["clock"].now = START
    report = track(world["engine"], world["market"], None, START)
    assert report.filled > 0
    return client


def test_the_track_record_summarises_the_ledgers_scored_forecasts(world) -> None:
    client = _scored_world(world)
    answer = client.get("/api/track-record?timeframe=1d&days=90").json()
    assert answer["ledger_head"]["seq"] == 240 and answer["min_n"] == 30
    (version,) = answer["versions"]
    assert version["model_version"] == "v-test" and version["forecasts"] > 200
    horizons = {h["horizon"]: h for h in version["horizons"]}
    first = horizons[1]
    assert first["status"] == "ok" and first["n"] >= 200
    # the flat forecaster states the last close: exactly naive's error, at every step
    assert first["mae_ratio"]["value"] == pytest.approx(1.0)
    assert first["mae_ratio"]["low"] <= 1.0 <= first["mae_ratio"]["high"]
    assert first["coverage_80"]["low"] <= first["coverage_80"]["value"] <= first["coverage_80"]["high"]
    assert first["interval_score"] > 0 and first["interval_score_ratio"]["value"] > 0
    assert first["crps"] > 0 and sum(first["pit_histogram"]) == pytest.approx(1.0)
    assert first["directional_accuracy"] is not None and first["called"] == first["n"]  # every step says "up"
    assert all(h["status"] == "ok" for h in version["horizons"])  # 120 or more forecasts reached each
    # over the last 12 days, the later horizons have few scored forecasts yet: said, not a number
    recent = client.get("/api/track-record?timeframe=1d&days=12").json()["versions"][0]["horizons"]
    late = [h for h in recent if h["n"] < 30]
    assert late and all(h["status"] == NOT_ENOUGH and h["mae_ratio"] is None for h in late)
    assert [h for h in recent if h["status"] == "ok"]
    assert version["reliability"] and client.get("/api/track-record?days=0").status_code == 400
    assert client.get("/api/track-record?timeframe=4h").json()["versions"] == []


def test_the_track_record_page_draws_its_plots_in_a_real_browser(tmp_path, pg_database_url, redis_cache,
                                                                 browser) -> None:
    from tests.conftest import make_world

    world = make_world(pg_database_url, redis_cache, tmp_path)
    client = _scored_world(world)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started and time.time() < deadline:
            time.sleep(0.1)
        page = browser.new_page(viewport={"width": 1280, "height": 1400}, bypass_csp=True)  # its probes evaluate JavaScript
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"http://127.0.0.1:{port}/")
        page.click("#track-record-link")
        page.wait_for_selector("#plots:not([hidden])", timeout=30_000)
        assert int(page.get_attribute("#coverage-plot", "data-points")) >= 10
        assert int(page.get_attribute("#mae-plot", "data-points")) >= 10
        assert int(page.get_attribute("#reliability-plot", "data-points")) >= 1
        assert page.text_content("#head-seq") == "240" and len(page.text_content("#head-hash")) == 64
        assert "ok" in page.text_content("#horizons")
        page.select_option("#days", "30")  # the later horizons have fewer scored forecasts in 30 days
        page.wait_for_function("document.querySelector('#horizons').textContent.includes('not enough data yet')",
                               timeout=30_000)
        Path("bench/results").mkdir(parents=True, exist_ok=True)
        page.screenshot(path="bench/results/track-record.png", full_page=True)
        page.select_option("#timeframe", "4h")  # nothing scored there: said, not drawn
        page.wait_for_function("document.querySelector('#message').textContent.includes('No scored forecast')",
                               timeout=30_000)
        assert page.is_hidden("#plots") and problems == []
        page.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        world["engine"].dispose()
