"""A faithful offline fake of Palabra AI's real-time speech-to-speech service (current protocol).

``serve_palabra_sim(options, task_status=...)`` serves REST (legacy ``/session-storage``) and the
S2S WebSocket on one port; ``callbridge sim palabra`` runs it alone. See ``app``, ``connection``
and ``rest`` for the behaviour, ``faults`` for fault injection, ``report`` for ``/_sim/report``.
"""

from __future__ import annotations

from callbridge.sim.palabra.app import RunningSim, serve_palabra_sim
from callbridge.sim.palabra.faults import FaultPlan, Faults
from callbridge.sim.palabra.options import SimOptions

__all__ = ["FaultPlan", "Faults", "RunningSim", "SimOptions", "serve_palabra_sim"]
