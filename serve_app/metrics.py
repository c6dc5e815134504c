"""Request latency, cache hit rate, forecast time and errors as Ray metrics (Prometheus, shown in
the Ray dashboard). Outside a Ray worker the same calls only count in memory."""

from __future__ import annotations

from dataclasses import dataclass, field

from accuracy.tracker import LiveSummary
from streaming.outbox import LiveStats

LATENCY_BOUNDARIES_MS = [5, 10, 25, 50, 100, 150, 250, 500, 1000, 2500, 5000]


@dataclass
class Metrics:
    requests: int = 0
    errors: int = 0
    hits: int = 0
    misses: int = 0
    _ray: dict = field(default_factory=dict)
    _live_seen: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            import ray

            if not ray.is_initialized():
                return
            from ray.util.metrics import Counter, Histogram

            self._ray = {
                "latency": Histogram("cryptocast_request_latency_ms", "HTTP request latency",
                                     boundaries=LATENCY_BOUNDARIES_MS, tag_keys=("route",)),
                "forecast": Histogram("cryptocast_forecast_ms", "time to compute an uncached forecast",
                                      boundaries=LATENCY_BOUNDARIES_MS),
                "cache": Counter("cryptocast_prediction_cache_total", "prediction cache lookups",
                                 tag_keys=("result",)),
                "errors": Counter("cryptocast_api_errors_total", "API answers with status >= 400",
                                  tag_keys=("route", "status")),
            }
        except Exception:
            self._ray = {}

    def live(self, stats: LiveStats) -> None:
        """This replica's live sockets (`cryptocast_live_viewers`, `cryptocast_live_symbols_watched`
        gauges; `cryptocast_live_messages_sent_total`, `_messages_dropped_total` counters, whose
        rate() is per second), from the hub's running counts. The upstream's figures come from the
        stream replica (`UpstreamGauges`)."""
        if not self._ray:
            return
        try:
            if "viewers" not in self._ray:
                from ray.util.metrics import Counter, Gauge

                self._ray["viewers"] = Gauge("cryptocast_live_viewers", "open live-candle WebSockets")
                self._ray["subscriptions"] = Gauge("cryptocast_live_symbols_watched",
                                                   "symbols this replica's viewers watch")
                for name, text in (("sent", "live messages sent"), ("dropped", "live forming-candle updates "
                                   "replaced before a slow socket read them")):
                    self._ray[name] = Counter(f"cryptocast_live_messages_{name}_total", text)
            self._ray["viewers"].set(stats.viewers)
            self._ray["subscriptions"].set(stats.subscriptions)
            for name in ("sent", "dropped"):
                value = getattr(stats, name)
                delta = value - self._live_seen.get(name, 0)
                if delta > 0:
                    self._ray[name].inc(delta)
                self._live_seen[name] = value
        except Exception:
            pass

    def request(self, route: str, status: int, ms: float) -> None:
        """`route` is the matched route's template (`/api/alerts/{alert_id}`), never the raw path:
        a path is the caller's text (any characters, any number of distinct values)."""
        self.requests += 1
        if status >= 400:
            self.errors += 1
        if not self._ray:
            return
        try:
            self._ray["latency"].observe(ms, tags={"route": route})
            if status >= 400:
                self._ray["errors"].inc(tags={"route": route, "status": str(status)})
        except Exception:
            pass

    def cache(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        if self._ray:
            self._ray["cache"].inc(tags={"result": "hit" if hit else "miss"})

    def forecast(self, ms: float) -> None:
        if self._ray:
            self._ray["forecast"].observe(ms)


class LiveAccuracyGauges:
    """The active model's live figures per timeframe for the Grafana board (last 7 days, from
    `model_accuracy`): `cryptocast_live_coverage_80`, `cryptocast_live_mae_ratio` (model MAE /
    naive MAE on the same steps; above 1 the model is worse than naive),
    `cryptocast_live_directional_accuracy` and `cryptocast_live_interval_score_ratio` (the band's
    interval score over naive's band's). Published by the forecaster replicas."""

    def __init__(self) -> None:
        self._ray: dict = {}
        try:
            import ray

            if not ray.is_initialized():
                return
            from ray.util.metrics import Gauge

            self._ray = {name: Gauge(f"cryptocast_live_{name}", text, tag_keys=("timeframe",)) for name, text in (
                ("coverage_80", "live share of actual closes inside the 80 % band, last 7 days"),
                ("mae_ratio", "live MAE of the model over naive's on the same steps, last 7 days"),
                ("directional_accuracy", "live share of steps whose direction was right, last 7 days"),
                ("interval_score_ratio", "live interval score of the 80 % band over naive's band's, last 7 days"))}
        except Exception:
            self._ray = {}

    def publish(self, live: LiveSummary) -> None:
        if self._ray:
            tags = {"timeframe": live.timeframe}
            self._ray["coverage_80"].set(live.coverage_80, tags=tags)
            self._ray["mae_ratio"].set(live.mae_ratio, tags=tags)
            self._ray["directional_accuracy"].set(live.directional_accuracy, tags=tags)
            if live.interval_score_ratio is not None:
                self._ray["interval_score_ratio"].set(live.interval_score_ratio, tags=tags)


class UpstreamGauges:
    """The live stream replica's figures: `cryptocast_live_upstream_subscriptions` (symbols
    subscribed upstream, cluster-wide) and `cryptocast_live_upstream_reconnects_total`."""

    def __init__(self) -> None:
        self._ray: dict = {}
        self._reconnects = 0
        try:
            import ray

            if not ray.is_initialized():
                return
            from ray.util.metrics import Counter, Gauge

            self._ray = {"subscriptions": Gauge("cryptocast_live_upstream_subscriptions",
                                                "symbols subscribed from the market stream, cluster-wide"),
                         "reconnects": Counter("cryptocast_live_upstream_reconnects_total",
                                               "times the market stream dropped and was reconnected")}
        except Exception:
            self._ray = {}

    def publish(self, subscriptions: int, reconnects: int) -> None:
        if self._ray:
            self._ray["subscriptions"].set(subscriptions)
            if reconnects > self._reconnects:
                self._ray["reconnects"].inc(reconnects - self._reconnects)
            self._reconnects = reconnects
