"""Progress of a long stage, shown while it runs: how far, and about how long is left.

Computing code stays free of printing: a loop calls `report(done, total, unit)`, which does
nothing unless the job's edge (`StageTimer.run`) is `reporting` for the stage that runs it. In
a Ray Train worker, `engine.train` installs a reporter that forwards to the driver's stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Reporter = Callable[[int, int, str], None]
_current: ContextVar[Reporter | None] = ContextVar("progress_reporter", default=None)


def report(done: int, total: int, unit: str) -> None:
    """`done` of `total` `unit` finished (a no-op unless a stage is reporting)."""
    reporter = _current.get()
    if reporter is not None:
        reporter(done, total, unit)


def current() -> Reporter | None:
    """The reporter of the stage running in this context (to hand on to another thread or process)."""
    return _current.get()


@contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    token = _current.set(reporter)
    try:
        yield
    finally:
        _current.reset(token)


class Throttled:
    """Echoes `[prefix] stage  done/total unit, ~N s left` at most every `every_s` seconds, and
    not before `every_s` have passed: a short stage prints only its closing line."""

    def __init__(self, prefix: str, echo: Callable[[str], None], every_s: float = 5.0) -> None:
        self.prefix, self.echo, self.every_s = prefix, echo, every_s
        self.started = self.last = time.perf_counter()

    def __call__(self, done: int, total: int, unit: str) -> None:
        now = time.perf_counter()
        if now - self.last < self.every_s or done <= 0 or done >= total:
            return
        self.last = now
        left = (now - self.started) / done * (total - done)
        self.echo(f"{self.prefix} {done}/{total} {unit}, ~{left:.0f} s left")
