"""launcher.terminal: the raylet's lines are kept off the terminal by wrapping Ray's printer; a
Ray whose internals moved leaves its lines as they are, and the service still starts."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from ray._private import worker

from launcher.terminal import forward_worker_lines


class _Dispatcher:
    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {"ray_print_logs": None}

    def remove_handler(self, name: str) -> None:
        del self.handlers[name]

    def add_handler(self, name: str, handler: Any) -> None:
        self.handlers[name] = handler


def test_the_raylets_lines_are_dropped_and_the_replicas_printed(monkeypatch) -> None:
    printed: list[tuple[dict[str, Any], bool]] = []
    dispatcher = _Dispatcher()
    monkeypatch.setattr(worker, "print_to_stdstream", lambda data, ignore_prefix: printed.append((data, ignore_prefix)))
    monkeypatch.setattr(worker, "global_worker_stdstream_dispatcher", dispatcher)
    forward_worker_lines(show_ray=False)
    dispatcher.handlers["ray_print_logs"]({"pid": "raylet", "lines": ["noise"]})
    dispatcher.handlers["ray_print_logs"]({"pid": 42, "lines": ["GET /api/health 200"]})
    worker.print_to_stdstream({"pid": "raylet", "lines": ["error channel"]}, True)
    assert printed == [({"pid": 42, "lines": ["GET /api/health 200"]}, False)]


def test_a_ray_without_the_printer_leaves_its_lines_and_says_so(monkeypatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delattr(worker, "print_to_stdstream")
    with caplog.at_level(logging.WARNING, logger="launcher.terminal"):
        forward_worker_lines(show_ray=False)
    assert "Ray's own lines are printed too" in caplog.text
