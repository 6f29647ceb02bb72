"""Running as a service: systemd's notify protocol and watchdog, liveness and readiness, the drain.

- ``systemd``: ``sd_notify`` over ``$NOTIFY_SOCKET`` (READY, STATUS, WATCHDOG, STOPPING, ...);
- ``health``: the event-loop monitor (lag, watchdog pings) and ``/readyz``'s readiness;
"""
