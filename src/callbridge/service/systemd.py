"""``SystemdNotifier``: the service manager's notification protocol, ``sd_notify(3)``.

systemd starts a ``Type=notify`` unit with ``$NOTIFY_SOCKET`` set to an ``AF_UNIX`` datagram
socket (a path, or an abstract name written with a leading ``@``). The service sends newline
separated ``KEY=value`` assignments to it: ``READY=1`` once it serves, ``STATUS=`` free text for
``systemctl status``, ``WATCHDOG=1`` keep-alives when the unit sets ``WatchdogSec=`` (systemd then
exports ``$WATCHDOG_USEC``, and ``$WATCHDOG_PID`` naming the process that must send them),
``STOPPING=1`` when shutdown begins and ``EXTEND_TIMEOUT_USEC=`` to ask for more time while it runs.
Source: https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html and
https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html (``WatchdogSec=``).

Without ``$NOTIFY_SOCKET`` (run from a shell, a container, the tests) every method does nothing
and opens no socket.

Error handling: a notification that cannot be sent (socket gone, queue full) is logged once and
counted in ``failures``; it never raises, since losing a status line must not stop the daemon.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from callbridge.log import get_logger

__all__ = ["SystemdNotifier"]

log = get_logger("callbridge.service.systemd")


class SystemdNotifier:
    """Sends ``sd_notify`` messages; build with :meth:`from_environ`."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = _socket_address(address) if address else None
        self._sock: socket.socket | None = None
        self.watchdog_usec = watchdog_usec
        self.failures = 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], pid: int | None = None) -> SystemdNotifier:
        """From ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID`` (the watchdog is
        ours only when ``$WATCHDOG_PID`` is unset or names ``pid``, default this process)."""
        watchdog: int | None = None
        raw_usec = environ.get("WATCHDOG_USEC", "")
        raw_pid = environ.get("WATCHDOG_PID", "")
        mine = not raw_pid or raw_pid == str(os.getpid() if pid is None else pid)
        if raw_usec.isdigit() and int(raw_usec) > 0 and mine:
            watchdog = int(raw_usec)
        return cls(environ.get("NOTIFY_SOCKET") or None, watchdog)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to send ``WATCHDOG=1``: half of ``WatchdogSec=``, as sd_watchdog_enabled(3)
        recommends; ``None`` when no watchdog is configured (or notifications are off)."""
        if self.watchdog_usec is None or not self.enabled:
            return None
        return self.watchdog_usec / 2e6

    def notify(self, **assignments: str | int) -> bool:
        """Send ``KEY=value`` lines (keyword names are upper-cased); True when sent."""
        if self._address is None:
            return False
        text = "\n".join(f"{key.upper()}={_one_line(value)}" for key, value in assignments.items())
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(text.encode(), self._address)
        except OSError as exc:
            self.failures += 1
            if self.failures == 1:
                log.warning("sd_notify_failed", error=str(exc), message=text.split("=", 1)[0])
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(ready=1, status=status)

    def status(self, text: str) -> bool:
        return self.notify(status=text)

    def watchdog(self) -> bool:
        return self.notify(watchdog=1)

    def stopping(self, status: str) -> bool:
        return self.notify(stopping=1, status=status)

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before the current (stop) timeout fires, counted from now."""
        return self.notify(extend_timeout_usec=int(seconds * 1_000_000))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _socket_address(raw: str) -> str:
    # An abstract socket: sd_notify(3) writes its leading NUL as "@".
    return "\0" + raw[1:] if raw.startswith("@") else raw


def _one_line(value: str | int) -> str:
    return str(value).replace("\n", " ")
