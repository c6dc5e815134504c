"""A replica's log lines on the launcher's terminal (`python -m serve_app` prints them; the rest of
what it prints and hides: `launcher.terminal`)."""

from __future__ import annotations

import logging
import sys

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# our packages' lines the terminal shows from each replica: every request (serve_app.requests),
# and warnings and errors from anything of ours
SHOWN = {"serve_app": logging.INFO}
MARK = "_cryptocast_terminal"


def show_replica_lines() -> None:
    """In a replica: our lines to the process's real stderr, which Ray forwards to the driver's
    terminal (Serve, when it keeps its own lines off stderr, points `sys.stderr` at its log
    file); and to Serve's log file of the replica as well. Idempotent."""
    root = logging.getLogger()
    if any(getattr(h, MARK, False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    setattr(handler, MARK, True)
    root.addHandler(handler)  # warnings and errors of every package of ours (root's level: WARNING)
    for name, level in SHOWN.items():
        logging.getLogger(name).setLevel(level)
    ours = logging.getLogger("serve_app")
    for file_handler in [h for h in logging.getLogger("ray.serve").handlers if not isinstance(h, logging.StreamHandler)]:
        if file_handler not in ours.handlers:
            ours.addHandler(file_handler)
