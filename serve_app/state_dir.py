"""Where `python -m serve_app` on one port keeps what outlives a process: its own pid, each
HAProxy's pid (`launcher.leftovers` ends what a crashed run left), and the drain flag its API
replicas read while it stops and their reports of requests in flight (`serve_app.stopping`,
`launcher.drain`): SERVE_STATE_DIR/serve-<SERVE_PORT>/. Shared by the launcher and its replicas."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config import Settings


@dataclass(frozen=True)
class StateDir:
    path: Path

    @classmethod
    def of(cls, settings: Settings) -> StateDir:
        return cls(Path(settings.serve_state_dir).resolve() / f"serve-{settings.serve_port}")

    @property
    def service_pid(self) -> Path:
        return self.path / "serve_app.pid"

    @property
    def haproxy_dir(self) -> Path:
        return self.path / "haproxy"

    @property
    def drain_flag(self) -> Path:
        return self.path / "draining"

    @property
    def drain_reports(self) -> Path:
        """Each API replica's count of requests in flight while the service stops, by pid."""
        return self.path / "in-flight"
