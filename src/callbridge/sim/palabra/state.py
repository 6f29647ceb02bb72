"""State shared by every connection of one simulator instance (no module-level state)."""

from __future__ import annotations

import itertools
from typing import Any

import attrs

from callbridge.sim.palabra.faults import Faults
from callbridge.sim.palabra.options import SimOptions
from callbridge.sim.palabra.report import ConnectionReport, Notice
from callbridge.sim.palabra.script import DemoScript
from callbridge.sim.palabra.sessions import SessionStore

__all__ = ["SimState"]


@attrs.define
class SimState:
    options: SimOptions
    faults: Faults
    script: DemoScript | None
    url: str  # http://host:port
    sessions: SessionStore = attrs.Factory(SessionStore)
    connections: list[ConnectionReport] = attrs.Factory(list)
    rejected_upgrades: list[dict[str, Any]] = attrs.Factory(list)
    # Faults aimed at one connection (by id): they replace ``faults`` for that connection.
    connection_faults: dict[str, Faults] = attrs.Factory(dict)
    _ids: itertools.count[int] = attrs.Factory(lambda: itertools.count(1))

    @property
    def ws_base(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def next_connection_id(self) -> str:
        return f"c{next(self._ids)}"

    def faults_for(self, connection_id: str) -> Faults:
        """The faults that apply to one connection: its own if any were aimed at it."""
        return self.connection_faults.get(connection_id, self.faults)

    def update_connection_faults(self, connection_id: str, changes: Any) -> list[str]:
        """Aim faults at one live connection (``POST /_sim/faults`` with ``connection``);
        returns problems, as ``Faults.update`` does (nothing is applied if any)."""
        live = {c.id for c in self.connections if c.closed_at is None}
        if connection_id not in live:
            return [f"connection: {connection_id!r} is not a live connection"]
        faults = self.connection_faults.get(connection_id, Faults())
        problems = faults.update(changes)
        if not problems:
            self.connection_faults[connection_id] = faults
        return problems

    def reject_upgrade(self, path: str, status: int, reason: str, at: float) -> None:
        self.rejected_upgrades.append({"path": path, "status": status, "reason": reason, "at": at})

    def reset(self) -> None:
        """Forget finished connections, sessions and rejections (between test scenarios)."""
        self.connections = [c for c in self.connections if c.closed_at is None]
        self.sessions.clear()
        self.rejected_upgrades.clear()

    def report(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "mode": "script" if self.script is not None else "tone",
            "connections": [c.as_json() for c in self.connections],
            "rejected_upgrades": list(self.rejected_upgrades),
            "sessions": self.sessions.as_json(),
            "faults": self.faults.as_json(),
            "connection_faults": {k: f.as_json() for k, f in self.connection_faults.items()},
        }

    def last_notice(self) -> Notice | None:  # pragma: no cover - convenience for debugging
        notices = [n for c in self.connections for n in (*c.warnings, *c.errors)]
        return max(notices, key=lambda n: n.at, default=None)
