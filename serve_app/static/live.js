// Live candles for the chart: one WebSocket to /api/ws/candles for the symbol on screen. While the
// connection is down the page says so and reconnects with exponential backoff (1, 2, 4, 8, 16 s:
// 5 tries), then offers a Reconnect button. app.js calls liveWatch(symbol, timeframe, onCandle).
"use strict";

const LIVE_TRIES = 5;
const live = { socket: null, symbol: null, timeframe: null, onCandle: null, tries: 0, timer: null, generation: 0 };

function liveIndicator(state, text) {
  const dot = document.getElementById("live");
  dot.hidden = state === "off";
  dot.dataset.state = state;
  dot.title = text || "";
  dot.querySelector(".label").textContent = state === "on" ? "live" : state === "waiting" ? "connecting" : "offline";
}

function liveBanner(text, offerReconnect) {
  const banner = document.getElementById("live-banner");
  banner.hidden = !text;
  banner.querySelector(".text").textContent = text || "";
  document.getElementById("live-reconnect").hidden = !offerReconnect;
}

function liveStop() {
  live.generation++;
  clearTimeout(live.timer);
  if (live.socket) { live.socket.onclose = null; live.socket.close(); }
  live.socket = null;
  liveBanner("", false);
  liveIndicator("off");
}

function liveWatch(symbol, timeframe, onCandle) {
  liveStop();
  Object.assign(live, { symbol, timeframe, onCandle, tries: 0 });
  liveOpen();
}

function liveOpen() {
  const mine = ++live.generation;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/api/ws/candles?symbol=${encodeURIComponent(live.symbol)}&timeframe=${live.timeframe}`;
  let socket;
  try { socket = new WebSocket(url); } catch (err) { return liveRetry(mine); }
  live.socket = socket;
  liveIndicator("waiting", "connecting to live data");
  let refused = false;
  socket.onmessage = (event) => {
    if (mine !== live.generation) return;
    let m;
    try { m = JSON.parse(event.data); } catch (err) { return; }
    if (m.type === "candle") {
      live.tries = 0;
      liveBanner("", false);
      liveIndicator("on", "live data");
      live.onCandle(m);
    } else if (m.type === "status") {
      if (m.status === "connected") { liveBanner("", false); liveIndicator("on", m.message); }
      else { liveBanner("Live data disconnected. Reconnecting...", false); liveIndicator("waiting", m.message); }
    } else if (m.type === "error") {
      refused = true;  // the server said why: no retry would change it
      liveBanner(`Live data unavailable: ${m.error.message}`, m.error.code === "market_unavailable" || m.error.code === "too_slow");
      liveIndicator("off");
    }
  };
  socket.onclose = () => {
    if (mine !== live.generation) return;
    live.socket = null;
    if (!refused) liveRetry(mine);
  };
}

function liveRetry(mine) {
  if (mine !== live.generation) return;
  liveIndicator("waiting", "reconnecting");
  if (live.tries >= LIVE_TRIES) {
    liveBanner("Live data disconnected.", true);
    liveIndicator("off");
    return;
  }
  const delay = 1000 * 2 ** live.tries;
  live.tries++;
  liveBanner("Live data disconnected. Reconnecting...", false);
  live.timer = setTimeout(() => { if (mine === live.generation) liveOpen(); }, delay);
}

document.getElementById("live-reconnect").addEventListener("click", () => {
  live.tries = 0;
  liveBanner("", false);
  liveOpen();
});
// a page left in the background keeps its socket; one whose network came back retries at once
window.addEventListener("online", () => { if (live.symbol && !live.socket) { live.tries = 0; liveOpen(); } });
