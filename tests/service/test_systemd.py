"""sd_notify over a datagram socket the test owns."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from callbridge.service.systemd import SystemdNotifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def test_each_message_arrives_as_one_datagram_of_key_value_lines(
    listener: tuple[str, socket.socket],
) -> None:
    path, sock = listener
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": path})
    assert notifier.ready("Serving: 0 active call(s) of 10")
    assert notifier.watchdog()
    assert notifier.stopping("Stopping:\nnow")
    assert notifier.extend_timeout(15)
    notifier.close()
    received = [sock.recv(4096).decode() for _ in range(4)]
    assert received == [
        "READY=1\nSTATUS=Serving: 0 active call(s) of 10",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=Stopping: now",  # a newline in a value would start a new assignment
        "EXTEND_TIMEOUT_USEC=15000000",
    ]


def test_abstract_socket_names_start_with_at() -> None:
    name = f"callbridge-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": "@" + name})
    with sock:
        assert notifier.status("hi")
        assert sock.recv(100) == b"STATUS=hi"
    notifier.close()


def test_without_notify_socket_nothing_is_sent_and_no_socket_opened() -> None:
    notifier = SystemdNotifier.from_environ({"WATCHDOG_USEC": "20000000"})
    assert not notifier.enabled
    assert not notifier.ready("x")
    assert notifier.watchdog_interval_s is None
    assert notifier._sock is None


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_our_pid(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "n"), "WATCHDOG_USEC": "20000000"}
    assert SystemdNotifier.from_environ(env).watchdog_interval_s == 10.0
    mine = SystemdNotifier.from_environ({**env, "WATCHDOG_PID": "42"}, pid=42)
    assert mine.watchdog_interval_s == 10.0
    other = SystemdNotifier.from_environ({**env, "WATCHDOG_PID": "41"}, pid=42)
    assert other.watchdog_interval_s is None


def test_a_vanished_socket_is_counted_and_never_raises(tmp_path: Path) -> None:
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert not notifier.watchdog()
    assert not notifier.watchdog()
    assert notifier.failures == 2
    notifier.close()
