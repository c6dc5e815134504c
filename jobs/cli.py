"""What every job shares on the command line: `--as-of`, logging, settings, the database, Ray."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import threading
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from clock import utc_now
from config import Settings, settings_or_exit
from market_data.timeframes import TIMEFRAMES
from storage.db import database_or_exit, make_engine
from storage.migrate import migration_url, upgrade


def parse_as_of(value: str) -> datetime:
    """A date (`2024-12-31`, midnight UTC) or an ISO time; naive times are UTC."""
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"--as-of {value!r} is not a date or ISO time") from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1 (a `--top 0` fails at once, not after minutes)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be at least 1")
    return number


def parse_timeframes(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in names if v not in TIMEFRAMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"--timeframes {value!r}: each must be one of {','.join(TIMEFRAMES)}")
    return names


def parser(description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--as-of", type=parse_as_of, default=utc_now(),
                   help="date or ISO time the run is as of (default: now); makes historical runs reproducible")
    return p


def setup(level: int = logging.INFO) -> tuple[Settings, Engine]:
    """Logging, validated settings, and a migrated database."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = settings_or_exit()
    database_or_exit(settings.database_url)
    upgrade(migration_url(settings))
    return settings, make_engine(settings.database_url)


def ray_address() -> str:
    """The cluster to join: RAY_ADDRESS (which `ray job submit` sets for its jobs), else a local
    Ray of our own. Never `None`: that would join whatever cluster a `ray start` last recorded in
    /tmp/ray, even one that has since stopped."""
    return os.environ.get("RAY_ADDRESS") or "local"


# Among the raylet's reports that Ray's driver prints (real errors: out of memory, dead workers),
# its note that it has started more worker processes than the node has CPUs, which Ray Train's and
# Ray Data's actors do on every small node. It comes from Ray's error-listener thread, or, held
# back by Ray's de-duplication of similar lines, from whichever thread flushes it at shutdown.
WORKER_STARTUP_NOTICE = re.compile(r"\(raylet\).{0,12} WARNING: \d+ PYTHON worker processes have been started on node")


class WithoutRayNotices:
    """sys.stdout as it was, less Ray's worker-startup notice. Print writes a line and its newline
    apart: a write that is the notice is dropped with the newline that follows it in the same
    thread; every other write goes straight through (nothing is held back)."""

    def __init__(self, stream: Any, notice: re.Pattern[str] = WORKER_STARTUP_NOTICE) -> None:
        self.stream, self.notice, self._thread = stream, notice, threading.local()

    def write(self, text: str) -> int:
        after_notice, self._thread.after_notice = getattr(self._thread, "after_notice", False), False
        if after_notice and text == "\n":
            return len(text)
        if self.notice.search(text):
            self._thread.after_notice = not text.endswith("\n")
            return len(text)
        return int(self.stream.write(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def init_ray() -> None:
    """Join the cluster `ray job submit` runs us on (RAY_ADDRESS), or start a local one."""
    import ray

    if not isinstance(sys.stdout, WithoutRayNotices):
        sys.stdout = WithoutRayNotices(sys.stdout)

    # the notices Ray prints on every start (token authentication on by default for a local
    # Ray, "progress bars disabled" below) are not the job's news: only its own lines are
    for name in ("ray._private.authentication", "ray.data._internal.progress"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        address = ray_address()
        ray.init(address=address, log_to_driver=False, configure_logging=False,
                 include_dashboard=False if address == "local" else None)
    # the jobs print one line per stage; Ray Data's per-operator progress would drown them
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    for name in ("ray.data", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Size overrides shared by the training jobs (smaller runs for trials and tests)."""
    p.add_argument("--n-estimators", type=positive_int, help="trees of the XGBoost models and of the random forest")
    p.add_argument("--max-depth", type=positive_int, help="depth of the recursive XGBoost model's trees")
    p.add_argument("--epochs", type=positive_int, help="most LSTM epochs (early stopping may end sooner)")


def model_params(args: argparse.Namespace, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The recursive model's parameters and the direct models', with the command line's overrides."""
    from training.candidates import default_direct_params

    params, direct = dict(params), default_direct_params()
    if args.n_estimators:
        for target in (params, direct["xgb_direct"], direct["rf"]):
            target["n_estimators"] = args.n_estimators
    if args.max_depth:
        params["max_depth"] = args.max_depth
    if args.epochs:
        direct["lstm"]["epochs"] = args.epochs
    return params, direct
