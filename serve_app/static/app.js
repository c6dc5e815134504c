// The cryptocast page: plain JavaScript over the public API (no build step). Every value that
// comes from the API is written with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const LWC = window.LightweightCharts;
const state = { symbol: null, timeframe: "1d", request: 0, lastBar: 0, forecastFrom: 0 };
const LAST_SYMBOL = "cryptocast.lastSymbol";
const REQUEST_TIMEOUT_MS = 30000;
let chart, history, forecastCandles, fanUpper, bandUpper, bandLower, fanLower;

function fmt(x) {
  const n = Number(x);
  return Math.abs(n) >= 1 ? n.toFixed(Math.max(2, 6 - Math.floor(Math.log10(Math.abs(n))) - 1)) : n.toPrecision(5);
}
const seconds = (iso) => Math.floor(Date.parse(iso) / 1000);
// a candle's time as people read it: in their own zone, named
const localTime = (iso) => new Date(iso).toLocaleString([], { year: "numeric", month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit", timeZoneName: "short" });

// The chart's price scale from the coin's own magnitude: a coin at 0.000004 needs eight decimals
// to show a move, one at 40,000 two; every series of the chart reads prices alike.
function priceFormatFor(price) {
  const p = Math.abs(Number(price));
  const digits = !(p > 0) || p >= 1 ? 2 : Math.min(12, Math.ceil(-Math.log10(p)) + 3);
  return { type: "price", precision: digits, minMove: Number((10 ** -digits).toFixed(digits)) };
}

function scaleTo(price) {
  const priceFormat = priceFormatFor(price);
  for (const series of [history, forecastCandles, fanUpper, bandUpper, bandLower, fanLower]) {
    series.applyOptions({ priceFormat });
  }
  $("chart").dataset.precision = String(priceFormat.precision);
}

function setupChart() {
  chart = LWC.createChart($("chart"), {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#1f2328", attributionLogo: true },
    grid: { vertLines: { visible: false }, horzLines: { color: "#eaeef2" } },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
  // the fan, as areas painted down to the chart's foot, each over the one before: the 5-95 %
  // range lightest, the 80 % band over it, then below the band the light shade again (opaque:
  // the light shade over white, covering the band's) and below the 5 % quantile white
  const area = (line, fill) => chart.addSeries(LWC.AreaSeries, { lineColor: line, topColor: fill, bottomColor: fill,
    lineWidth: 1, priceLineVisible: false, lastValueVisible: false });
  fanUpper = area("rgba(9,105,218,0.2)", "rgba(9,105,218,0.07)");
  bandUpper = area("rgba(9,105,218,0.45)", "rgba(9,105,218,0.18)");
  bandLower = area("rgba(9,105,218,0.45)", "#eef4fc");
  fanLower = area("rgba(9,105,218,0.2)", "#ffffff");
  history = chart.addSeries(LWC.CandlestickSeries, { upColor: "#1a7f37", downColor: "#cf222e", borderVisible: false,
    wickUpColor: "#1a7f37", wickDownColor: "#cf222e" });
  forecastCandles = chart.addSeries(LWC.CandlestickSeries, { upColor: "rgba(26,127,55,0.35)",
    downColor: "rgba(207,34,46,0.35)", borderUpColor: "#1a7f37", borderDownColor: "#cf222e", borderVisible: true,
    wickUpColor: "#1a7f37", wickDownColor: "#cf222e", priceLineVisible: false });
}

function say(text, kind, retry) {
  const m = $("message");
  m.textContent = text;
  m.className = kind || "";
  m.hidden = !text;
  $("retry").hidden = !retry;
}

async function api(method, path, body) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
  options.signal = abort.signal;
  try {
    response = await fetch(path, options);
  } catch (err) {
    return { ok: false, network: !abort.signal.aborted, timeout: abort.signal.aborted, status: 0, body: null };
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  try { data = await response.json(); } catch (err) { data = null; }
  return { ok: response.ok, status: response.status, body: data, headers: response.headers };
}

function errorText(result) {
  if (result.network) return "Could not reach the server. Check your connection and retry.";
  if (result.timeout) return "The server took too long to answer. Please retry.";
  if (result.status >= 500 && !(result.body && result.body.error)) return "Something went wrong on our side. Please retry.";
  const error = result.body && result.body.error;
  let text = error ? error.message : `The server answered ${result.status}.`;
  if (result.status === 429 && result.headers && result.headers.get("Retry-After")) {
    text += ` (try again ${waitWords(Number(result.headers.get("Retry-After")))})`;
  }
  return text;
}

// "in 40 s", "in 60 min", "at 14:00": a wait as a person plans around it
function waitWords(s) {
  if (!(s > 0)) return "later";
  if (s < 120) return `in ${Math.ceil(s)} s`;
  if (s < 7200) return `in ${Math.round(s / 60)} min`;
  return `at ${new Date(Date.now() + s * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
}

// Retry is offered only where retrying soon can help: the network, the server's own trouble, a
// short wait; not a coin that does not exist, a timeframe without a model or a day's quota spent
function retryable(result) {
  if (result.network || result.timeout) return true;
  const code = result.body && result.body.error && result.body.error.code;
  if (code === "no_model") return false;
  if (result.status === 429) {
    const wait = Number(result.headers && result.headers.get("Retry-After"));
    return wait > 0 && wait <= 120;
  }
  return result.status >= 500;
}

// what is left of today's forecasts, from the answer's X-RateLimit-* headers
function showQuota(result) {
  const limit = result.headers && result.headers.get("X-RateLimit-Limit");
  if (!limit) return;
  const left = result.headers.get("X-RateLimit-Remaining");
  const free = localStorage.getItem("cryptocast.signedIn") ? "" : "free ";
  $("quota").textContent = `${left} of ${limit} ${free}forecasts left today`;
  $("quota").hidden = false;
}

function clearForecast() {
  for (const series of [forecastCandles, fanUpper, bandUpper, bandLower, fanLower]) series.setData([]);
  $("ask").hidden = true;
  $("ask-answer").textContent = "";
  $("outlook").textContent = "";
  state.asked = null;
  $("steps").hidden = true; $("steps").querySelector("tbody").replaceChildren();
  $("summary").hidden = true;
  $("chart").dataset.forecast = "0";
  $("chart").dataset.prediction = "";
  state.forecastFrom = 0;
  $("forecast-old").hidden = true;
}

function drawForecast(p, stale) {
  const steps = p.steps;
  forecastCandles.setData(steps.map((s) => ({ time: seconds(s.timestamp), open: s.open, high: s.high, low: s.low, close: s.close })));
  const fan = steps.every((s) => s.quantiles);
  const line = (key) => steps.map((s) => ({ time: seconds(s.timestamp), value: s.quantiles[key] }));
  fanUpper.setData(fan ? line("0.95") : []);
  fanLower.setData(fan ? line("0.05") : []);
  bandUpper.setData(steps.map((s) => ({ time: seconds(s.timestamp), value: s.upper })));
  bandLower.setData(steps.map((s) => ({ time: seconds(s.timestamp), value: s.lower })));
  chart.timeScale().fitContent();
  $("chart").dataset.forecast = String(steps.length);
  $("chart").dataset.fan = fan ? "1" : "0";
  state.forecastFrom = seconds(steps[0].timestamp);  // step 1 is the candle forming when it was made
  $("forecast-old").hidden = true;
  // a direction and a confidence only where validation proved an edge; a flat forecast says what it is
  const proven = steps.some((s) => s.direction !== "flat");
  const last = steps[steps.length - 1];
  $("title").textContent = `${p.symbol} · ${p.timeframe} · ${steps.length}-step forecast: ` +
    (proven ? p.direction : "no proven direction");
  $("outlook").textContent = proven
    ? `80 % of the time the close of step ${last.step} is between ${fmt(last.lower)} and ${fmt(last.upper)}.`
    : `No proven direction: the price is as likely to rise as to fall. 80 % of the time it stays in this range: ` +
      `${fmt(last.lower)} to ${fmt(last.upper)} by step ${last.step}.`;
  $("meta").textContent = `model ${p.model_version} · made ${new Date(p.created_at).toISOString().replace(".000", "")}` +
    (proven ? ` · mean confidence ${(p.confidence_avg * 100).toFixed(1)} %` : "") + (p.cached ? " · from cache" : "") +
    (stale ? " · STALE (market data unavailable)" : "");
  state.asked = { prediction: p.prediction_id, steps: steps.length, unit: UNITS[p.timeframe] || "candles",
                  last: steps[0].open };
  $("ask-price").value = "";
  $("ask-within").max = String(steps.length);
  $("ask-within").value = String(Math.min(10, steps.length));
  $("ask").hidden = !fan || stale;
  $("summary").hidden = false;
  const shown = p.prediction_id;
  $("chart").dataset.prediction = shown;
  logCheck.show(p, $("proof"), () => $("chart").dataset.prediction === shown);
  const body = $("steps").querySelector("tbody");
  body.replaceChildren(...steps.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.close = String(s.close);
    const flat = s.direction === "flat";
    const cells = [s.step, localTime(s.timestamp), fmt(s.open), fmt(s.high), fmt(s.low), fmt(s.close),
      `${fmt(s.lower)} – ${fmt(s.upper)}`, flat ? "—" : `${(s.confidence * 100).toFixed(1)} %`,
      flat ? "no edge" : s.direction];
    for (const value of cells) {
      const td = document.createElement("td");
      td.textContent = String(value);
      tr.appendChild(td);
    }
    tr.lastChild.className = s.direction;
    return tr;
  }));
  $("steps").hidden = false;
}

// -- asking the forecast: the chance that the price touches a level --------------------------
const UNITS = { "1h": "hours", "4h": "4-hour candles", "1d": "days", "1w": "weeks", "1m": "months" };

// "about 1 in 4": the nearest 1 in n a person reads at a glance, beside the percentage
function inWords(p) {
  if (p >= 0.995) return "almost certain";
  if (p < 0.005) return "almost no chance";
  if (p > 0.5) return `about ${Math.round(p * 10)} in 10`;
  return `about 1 in ${Math.round(1 / p)}`;
}

async function ask(event) {
  event.preventDefault();
  const asked = state.asked, price = Number($("ask-price").value), within = Number($("ask-within").value);
  if (!asked || !(price > 0)) { $("ask-answer").textContent = "Enter a price above 0."; return; }
  if (!(within >= 1 && within <= asked.steps)) { $("ask-answer").textContent = `Choose 1 to ${asked.steps}.`; return; }
  const base = `/api/predictions/${encodeURIComponent(asked.prediction)}/probability`;
  const [touch, above] = await Promise.all([api("GET", `${base}?touch=${price}&within=${within}`),
    api("GET", `${base}?above=${price}&step=${within}`)]);
  if (state.asked !== asked) return;  // a newer forecast is on screen
  if (!touch.ok || !above.ok) { $("ask-answer").textContent = errorText(touch.ok ? above : touch); return; }
  const pt = touch.body.p_touch, pa = above.body.p_above;
  const side = price >= asked.last ? "above" : "below";
  const close = side === "above" ? pa : 1 - pa;
  $("ask-answer").textContent = `${inWords(pt)} (${(pt * 100).toFixed(0)} %) that it touches ${fmt(price)} within ` +
    `${within} ${asked.unit}; ${(close * 100).toFixed(0)} % that it closes ${side} it then.`;
  $("ask-answer").dataset.pTouch = String(pt);
}

async function loadCandles(symbol, timeframe, ticket) {
  const r = await api("GET", `/api/candles?symbol=${encodeURIComponent(symbol)}&timeframe=${timeframe}&limit=120`);
  if (ticket !== state.request) return;
  if (r.ok) {
    const bars = r.body.candles.map((c) => ({ time: seconds(c.timestamp), open: c.open, high: c.high, low: c.low, close: c.close }));
    if (bars.length) scaleTo(bars[bars.length - 1].close);
    history.setData(bars);
    state.lastBar = bars.length ? bars[bars.length - 1].time : 0;
    $("chart").dataset.candles = String(r.body.candles.length);
    liveWatch(symbol, timeframe, (m) => { if (ticket === state.request) liveCandle(m); });
  } else {
    history.setData([]);
    $("chart").dataset.candles = "0";
    liveStop();
    if (r.status === 404) {  // a coin no longer listed (or remembered from before resolution): not opened again
      if (localStorage.getItem(LAST_SYMBOL) === symbol) localStorage.removeItem(LAST_SYMBOL);
      say(errorText(r), "error", false);
    }
  }
  $("chart").dataset.timeframe = timeframe;
  chart.timeScale().fitContent();
}

// The last candle moves with the market; once the candle the forecast started from closes, the
// forecast is one candle old and the page offers a fresh one.
function liveCandle(m) {
  const c = m.candle, time = seconds(c.timestamp);
  if (time < state.lastBar) return;  // older than the chart's last bar: a closed candle it already has
  history.update({ time, open: c.open, high: c.high, low: c.low, close: c.close });
  state.lastBar = time;
  $("chart").dataset.liveClose = String(c.close);
  $("chart").dataset.liveTime = c.timestamp;
  if (m.closed && state.forecastFrom && time >= state.forecastFrom) $("forecast-old").hidden = false;
}

// Only the chart and its live candle: what the page opens on, spending no forecast.
async function show(symbol) {
  state.symbol = symbol;
  $("symbol").value = symbol;
  const ticket = ++state.request;
  clearForecast();
  $("chart").setAttribute("aria-busy", "true");
  await loadCandles(symbol, state.timeframe, ticket);
  if (ticket !== state.request) return;
  $("chart").removeAttribute("aria-busy");
  $("title").textContent = `${symbol} · ${state.timeframe}`;
  $("meta").textContent = "Press Forecast for its next 30 candles.";
  $("summary").hidden = false;
  showControls();
}

async function load() {
  const symbol = state.symbol;
  if (!symbol) return;
  const timeframe = state.timeframe;
  const ticket = ++state.request;
  clearForecast();
  $("chart").setAttribute("aria-busy", "true");  // a newer request supersedes this one (ticket)
  say("", "", false);
  const slow = setTimeout(() => { if (ticket === state.request) say("Generating prediction...", "", false); }, 300);
  const [, r] = await Promise.all([loadCandles(symbol, timeframe, ticket),
    api("POST", "/api/predictions/generate", { symbol, timeframe })]);
  clearTimeout(slow);
  if (ticket !== state.request) return;
  $("chart").removeAttribute("aria-busy");
  showQuota(r);
  if (r.ok) {
    say("", "", false);
    drawForecast(r.body, false);
  } else if (r.body && r.body.last_prediction) {
    say(`${errorText(r)} Showing the last prediction, made ${r.body.last_prediction.created_at}.`, "stale", true);
    drawForecast(r.body.last_prediction, true);
  } else {
    say(errorText(r), "error", retryable(r));
  }
  refreshAccount();
}

// -- search with typeahead ---------------------------------------------------------------------
let searchTimer = null, active = -1, searches = 0;
function suggestions() { return Array.from($("suggestions").children); }
// hiding also cancels a search still to come or still in flight: a symbol chosen (Enter, a
// click) must not see its suggestions reopen over the page when a late answer arrives
function hideSuggestions() { clearTimeout(searchTimer); searches++; $("suggestions").hidden = true; active = -1; }

async function suggest(query) {
  if (!query.trim()) return hideSuggestions();
  const mine = ++searches;
  const r = await api("GET", `/api/symbols/search?q=${encodeURIComponent(query)}&limit=8`);
  if (mine !== searches) return;  // hidden or overtaken meanwhile
  if (!r.ok || query !== $("symbol").value) return hideSuggestions();
  const list = $("suggestions");
  list.replaceChildren(...r.body.results.map((s) => {
    const li = document.createElement("li");
    li.setAttribute("role", "option");
    li.dataset.ticker = s.ticker;
    const t = document.createElement("strong");
    t.textContent = s.ticker;
    const n = document.createElement("span");
    n.className = "name";
    n.textContent = s.name;
    li.append(t, n);
    li.addEventListener("mousedown", (e) => { e.preventDefault(); choose(s.ticker); });
    return li;
  }));
  list.hidden = r.body.results.length === 0;
  active = -1;
}

function choose(ticker) {
  $("symbol").value = ticker;
  hideSuggestions();
  state.symbol = ticker;
  localStorage.setItem(LAST_SYMBOL, ticker);
  load();
}

// What a person typed ("btc", "BTC-USD", "bitcoin"), resolved by the server to the one coin it
// names; where it names several they are offered, where none the message says what to type.
// Nothing that does not resolve becomes the symbol on screen or the last one remembered.
async function chooseTyped(text) {
  const mine = ++searches;
  const r = await api("GET", `/api/symbols/resolve?q=${encodeURIComponent(text)}`);
  if (mine !== searches) return;
  if (r.ok) return choose(r.body.ticker);
  const candidates = (r.body && r.body.candidates) || [];
  say(errorText(r), "error", false);
  if (candidates.length) {
    $("symbol").value = text;
    await suggest(text);
  }
}

$("symbol").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => suggest($("symbol").value), 150);
});
$("symbol").addEventListener("keydown", (e) => {
  const items = suggestions();
  if ($("suggestions").hidden || !items.length) return;
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    active = (active + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
    items.forEach((li, i) => li.classList.toggle("active", i === active));
  } else if (e.key === "Escape") {
    hideSuggestions();
  }
});
$("symbol").addEventListener("blur", () => setTimeout(hideSuggestions, 100));
$("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const items = suggestions();
  if (!$("suggestions").hidden && active >= 0 && items[active]) return choose(items[active].dataset.ticker);
  const typed = $("symbol").value.trim();
  if (typed) chooseTyped(typed);
});
// a new timeframe forecasts again where a forecast is on screen; otherwise it shows the chart
$("timeframe").addEventListener("change", () => {
  state.timeframe = $("timeframe").value;
  if ($("chart").dataset.forecast !== "0") load(); else if (state.symbol) show(state.symbol);
});
$("retry").addEventListener("click", () => load());
$("forecast-refresh").addEventListener("click", () => load());
$("ask").addEventListener("submit", ask);

// -- account -----------------------------------------------------------------------------------
// The session cookie is httpOnly (scripts cannot read it); this flag only says whether to ask
// /api/me, so that an anonymous visit makes no request that must fail.
const SIGNED_IN = "cryptocast.signedIn";

async function refreshAccount() {
  const r = localStorage.getItem(SIGNED_IN) ? await api("GET", "/api/me") : { ok: false };
  const signedIn = r.ok;
  if (!signedIn) localStorage.removeItem(SIGNED_IN);
  $("signin-form").hidden = signedIn;
  $("signed-in").hidden = !signedIn;
  state.signedIn = signedIn;
  showControls();
  // the account panel (account.js) follows who is signed in
  document.dispatchEvent(new CustomEvent("account", { detail: signedIn ? r.body : null }));
  if (signedIn) {
    const u = r.body.usage;
    $("who").textContent = `${r.body.user.email} · ${r.body.tier} · ${u.api_calls} of ${u.limit} forecasts today`;
    refreshWatchlist();
  }
}

// the watchlist and alert controls act on the symbol on screen, for a signed-in user only
function showControls() { $("mine").hidden = !(state.signedIn && state.symbol); }

// -- a signed-in user's default watchlist (one click forecasts a symbol) and alerts -------------
let watchlistId = null;
async function refreshWatchlist() {
  const r = await api("GET", "/api/watchlists");
  if (!r.ok) return;
  const list = r.body.watchlists.find((w) => w.is_default) || null;
  watchlistId = list ? list.id : null;
  $("watchlist-items").replaceChildren(...(list ? list.items : []).map((item) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.ticker = item.symbol;
    b.textContent = item.symbol;
    b.addEventListener("click", () => choose(item.symbol));
    return b;
  }));
}
$("watch").addEventListener("click", async () => {
  if (!state.symbol) return;
  if (!watchlistId) {
    const made = await api("POST", "/api/watchlists", { name: "My watchlist" });
    if (!made.ok) return say(errorText(made), "error", false);
    watchlistId = made.body.id;
  }
  const r = await api("POST", `/api/watchlists/${watchlistId}/items`, { symbol: state.symbol });
  if (!r.ok && r.status !== 409) return say(errorText(r), "error", false);
  refreshWatchlist();
});
$("alert-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!state.symbol) return;
  const r = await api("POST", "/api/alerts", { symbol: state.symbol, condition_type: $("alert-condition").value,
    target_price: Number($("alert-price").value) });
  // the chance it triggers, where today's 1d forecast of the coin has been made
  const chance = r.ok && r.body.p_trigger !== null && r.body.p_trigger !== undefined
    ? ` · ${inWords(r.body.p_trigger)} (${(r.body.p_trigger * 100).toFixed(0)} %) that it triggers within 30 days`
    : "";
  $("alert-status").textContent = r.ok ? `alert set: ${r.body.symbol} ${r.body.condition_type} ${r.body.target_price}` +
    chance + (r.body.email_notice ? " (no email until your address is verified)" : "") : "";
  if (!r.ok) say(errorText(r), "error", false);
});
$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await api("POST", "/api/auth/login", { email: $("email").value, password: $("password").value });
  $("password").value = "";
  if (!r.ok) return say(errorText(r), "error", false);
  localStorage.setItem(SIGNED_IN, "1");
  say("", "", false);
  refreshAccount();
});
$("signout").addEventListener("click", async () => {
  await api("POST", "/api/auth/logout");
  localStorage.removeItem(SIGNED_IN);
  refreshAccount();
});

setupChart();
refreshAccount();
const fromUrl = new URLSearchParams(location.search);
if (fromUrl.get("symbol")) {
  state.timeframe = fromUrl.get("timeframe") || "1d";
  $("timeframe").value = state.timeframe;
  chooseTyped(fromUrl.get("symbol"));
} else {
  openingView();
}

// The page opens on the last symbol this browser looked at, else the top coin by USD volume.
async function openingView() {
  let symbol = localStorage.getItem(LAST_SYMBOL);
  if (!symbol) {
    const r = await api("GET", "/api/symbols/search?q=X:&limit=1");
    symbol = r.ok && r.body.results.length ? r.body.results[0].ticker : null;
  }
  if (symbol && !state.symbol) show(symbol);
}
