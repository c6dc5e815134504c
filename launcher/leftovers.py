"""What an earlier `python -m serve_app` on the same port left behind, found and ended before a
new one starts; or, where a port is held by anything else, one line that names the port and the
process.

A crash (SIGKILL, the OOM killer) leaves Ray's HAProxy running as an orphan that holds SERVE_PORT
and the metrics and stats ports, and every later start fails minutes in with HAProxy's own line.
So each HAProxy records itself as it starts (`launcher/haproxy/haproxy` writes
`<state>/haproxy/<pid>.pid` holding its configuration's path), and the service records its own
pid. At start: a live service on the port is refused (never ended); an HAProxy of a dead one is
ended only when its command line is still that HAProxy with that configuration (a reused pid is
left alone), never by name.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from pathlib import Path

import psutil

from config import Settings
from serve_app.state_dir import StateDir
from serve_app.stopping import DrainFlag

log = logging.getLogger(__name__)
GRACE_S = 5.0


class PortTaken(SystemExit):
    """Startup refused: the message names the port and what holds it."""


def _alive(pid: int) -> psutil.Process | None:
    try:
        proc = psutil.Process(pid)
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _is_service(proc: psutil.Process) -> bool:
    cmdline = _cmdline(proc)
    return "serve_app" in cmdline and "-m" in cmdline


def _is_our_haproxy(proc: psutil.Process, config: str) -> bool:
    cmdline = _cmdline(proc)
    return bool(cmdline) and "haproxy" in Path(cmdline[0]).name and config in cmdline


def end_leftovers(state: StateDir, port: int) -> list[int]:
    """End the HAProxy processes a dead instance on `port` left; refuse if one still runs.
    Returns the pids ended."""
    if state.service_pid.exists():
        try:
            pid = int(state.service_pid.read_text().strip())
        except ValueError:
            pid = 0
        proc = _alive(pid) if pid and pid != os.getpid() else None
        if proc is not None and _is_service(proc):
            raise PortTaken(f"port {port}: python -m serve_app already runs as pid {pid}; stop it first "
                            f"(kill -INT {pid})")
    ended: list[int] = []
    for proc in recorded_haproxies(state):
        log.warning("ending HAProxy pid %d, left behind by an earlier run on port %d", proc.pid, port)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(GRACE_S)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(GRACE_S)
        ended.append(proc.pid)
    for record in state.haproxy_dir.glob("*.pid") if state.haproxy_dir.exists() else []:
        record.unlink(missing_ok=True)
    return ended


def recorded_haproxies(state: StateDir) -> list[psutil.Process]:
    """The HAProxy processes recorded in `state` that still run as that HAProxy with that
    configuration (a pid reused by another program is not one)."""
    found = []
    for record in sorted(state.haproxy_dir.glob("*.pid")) if state.haproxy_dir.exists() else []:
        proc = _alive(int(record.stem)) if record.stem.isdigit() else None
        if proc is not None and _is_our_haproxy(proc, record.read_text().strip()):
            found.append(proc)
    return found


def _holder(port: int) -> str:
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({' '.join(proc.cmdline())[:120]})"
    except (psutil.Error, OSError):
        pass
    return "a process this user cannot see"


def check_ports(host: str, ports: dict[str, int]) -> None:
    """Refuse at once, naming the port and its holder, rather than let HAProxy fail minutes in."""
    for name, port in ports.items():
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                raise PortTaken(f"{name}={port} on {host} is taken by {_holder(port)}; stop it or choose "
                                f"another {name}") from None


def claim(settings: Settings) -> StateDir:
    """Before Ray starts: end our own leftovers, check the ports, record this process. Returns the
    state directory, whose `haproxy_dir` HAProxy records itself in."""
    state = StateDir.of(settings)
    state.haproxy_dir.mkdir(parents=True, exist_ok=True)
    if end_leftovers(state, settings.serve_port):
        time.sleep(0.5)  # the kernel releases the listeners
    check_ports(settings.serve_host, {"SERVE_PORT": settings.serve_port,
                                      "SERVE_METRICS_PORT": settings.ports.metrics,
                                      "SERVE_STATS_PORT": settings.ports.stats,
                                      "SERVE_FALLBACK_PORT": settings.ports.fallback})
    DrainFlag(state.drain_flag).lower()  # a crashed run's flag would refuse every request
    tmp = state.service_pid.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(state.service_pid)
    return state


def release(state: StateDir) -> None:
    """A clean stop: nothing left to end next time."""
    try:
        if int(state.service_pid.read_text().strip()) == os.getpid():
            state.service_pid.unlink()
    except (OSError, ValueError):
        pass
    for record in state.haproxy_dir.glob("*.pid"):  # HAProxy reloads start new ones: forget the gone
        if not record.stem.isdigit() or _alive(int(record.stem)) is None:
            record.unlink(missing_ok=True)
    DrainFlag(state.drain_flag).lower()
