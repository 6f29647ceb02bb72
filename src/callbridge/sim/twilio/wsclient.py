"""The fake Twilio's WebSocket client: wsproto over a non-blocking socket, with no task of its own.

Twilio is the *client* of a Media Streams WebSocket (RFC 6455). The simulator drives a hundred
or more of these at once from one core, so each one is built for few task switches: sends are
synchronous (:meth:`MediaSocket.send_text` frames the message with wsproto and writes it
straight to the socket, queueing only what the kernel did not take), and reads are done by the
simulator's one media task (:class:`~callbridge.sim.twilio.engine.MediaEngine`), which calls
:meth:`MediaSocket.on_readable` when data is there; each whole message goes to the
``on_message`` callback given to :meth:`MediaSocket.start`. trio-websocket, by contrast, runs a
reader task per socket and hands every message over a channel to a second task.

Protocol: the opening handshake and all framing (client masking, fragments, ping/pong, the
close handshake) are wsproto's (https://python-hyper.org/projects/wsproto/), which follows
RFC 6455 (https://www.rfc-editor.org/rfc/rfc6455).

Resource handling: :func:`connect_websocket` returns a connected :class:`MediaSocket` or closes
the socket it opened before raising. The caller owns the result: :meth:`MediaSocket.aclose`
runs the close handshake (bound it with a timeout), :meth:`MediaSocket.abort` drops the TCP
connection without one; both are idempotent and take the socket out of the engine.
:meth:`MediaSocket.flush_outbox` must run in a task while the socket is used, or bytes the
kernel could not take at once are never written.

Error handling: :func:`connect_websocket` raises :class:`WsRejected` (the server answered the
upgrade with an HTTP status), :class:`WsHandshakeError` (not a WebSocket answer) or ``OSError``
(TCP). After the handshake, the ``on_closed`` callback runs once when the peer closed (close
frame or EOF); sends on a closed socket are dropped and return False.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

if TYPE_CHECKING:
    from callbridge.sim.twilio.engine import MediaEngine

__all__ = ["MediaSocket", "WsHandshakeError", "WsRejected", "connect_websocket"]

RECV_BYTES = 65536  # one read; a media message is about 300 bytes
HANDSHAKE_MAX_BYTES = 65536  # an upgrade answer larger than this is not a WebSocket server


class WsRejected(Exception):
    """The server answered the upgrade with an HTTP ``status`` instead of 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"upgrade rejected with HTTP {status}")
        self.status = status


class WsHandshakeError(Exception):
    """The server's answer to the upgrade was not valid HTTP/WebSocket, or it closed first."""


async def connect_websocket(
    host: str, port: int, resource: str, headers: list[tuple[bytes, bytes]]
) -> MediaSocket:
    """Open TCP to ``host:port`` and upgrade ``resource`` with the extra ``headers``.

    Bound it with ``trio.fail_after``; a cancelled connect closes its socket.
    """
    family, type_, proto, _, address = (
        await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    )[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setblocking(False)
        await _tcp_connect(sock, address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = MediaSocket(sock)
        await conn._handshake(f"{host}:{port}", resource, headers)
    except BaseException:
        trio.lowlevel.notify_closing(sock)
        sock.close()
        raise
    return conn


async def _tcp_connect(sock: socket.socket, address: Any) -> None:
    err = sock.connect_ex(address)
    if err == errno.EINPROGRESS:
        await trio.lowlevel.wait_writable(sock)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, f"connect to {address}: {errno.errorcode.get(err, err)}")


class MediaSocket:
    """One client WebSocket; see the module docstring for the task model."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._engine: MediaEngine | None = None
        self._on_message: Callable[[str | bytes], None] = _ignore
        self._on_closed: Callable[[], None] = _nothing
        self._text: list[str] = []  # fragments of a message still arriving
        self._binary = bytearray()
        self._outbox = bytearray()  # bytes the kernel did not take yet, in order
        self._outbox_ready = trio.Event()
        self._peer_closed = trio.Event()
        self._dropped = False

    @property
    def closed(self) -> bool:
        """True once either side closed, or the connection was dropped."""
        return self._dropped or self._ws.state is not ConnectionState.OPEN

    def start(
        self,
        engine: MediaEngine,
        on_message: Callable[[str | bytes], None],
        on_closed: Callable[[], None],
    ) -> None:
        """Have ``engine`` read this socket from now on: each whole message goes to
        ``on_message``; ``on_closed`` runs once the peer closed or the connection dropped."""
        self._engine, self._on_message, self._on_closed = engine, on_message, on_closed
        engine.watch(self._sock.fileno(), self)

    def pause_reading(self) -> None:
        """Leave data in the kernel (a slow reader: TCP backpressure) until :meth:`resume_reading`."""
        if self._engine is not None and not self._dropped:
            self._engine.pause(self._sock.fileno())

    def resume_reading(self) -> None:
        if self._engine is not None and not self._dropped:
            self._engine.resume(self._sock.fileno())

    # ---- sending (synchronous) ----------------------------------------------------------------

    def send_text(self, text: str) -> bool:
        """Queue one text message; False (nothing sent) once the socket is closed."""
        if self.closed:
            return False
        self._write(self._ws.send(Message(data=text)))
        return True

    def send_bytes(self, data: bytes) -> bool:
        """Queue one binary message; False (nothing sent) once the socket is closed."""
        if self.closed:
            return False
        self._write(self._ws.send(Message(data=data)))
        return True

    def _write(self, data: bytes) -> None:
        if self._dropped:
            return
        if not self._outbox:
            try:
                sent = self._sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._drop()
                return
            if sent == len(data):
                return
            data = data[sent:]
        self._outbox += data
        self._outbox_ready.set()

    async def flush_outbox(self) -> None:
        """Write whatever the kernel could not take at once; run it in a task, it never ends
        by itself (cancel it)."""
        while not self._dropped:
            await self._outbox_ready.wait()
            self._outbox_ready = trio.Event()
            while self._outbox and not self._dropped:
                try:
                    await trio.lowlevel.wait_writable(self._sock)
                except trio.ClosedResourceError:
                    return
                try:
                    sent = self._sock.send(self._outbox)
                except BlockingIOError:
                    continue
                except OSError:
                    self._drop()
                    return
                del self._outbox[:sent]

    # ---- receiving (called by the engine) -----------------------------------------------------

    def on_readable(self) -> None:
        """Read what is there now and deliver every whole message (see :meth:`start`)."""
        try:
            data = self._sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop()
            return
        self._ws.receive_data(data)
        for event in self._ws.events():
            self._on_event(event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, TextMessage):
            self._text.append(event.data)
            if event.message_finished:
                message, self._text = "".join(self._text), []
                self._on_message(message)
        elif isinstance(event, BytesMessage):
            self._binary += event.data
            if event.message_finished:
                binary, self._binary = bytes(self._binary), bytearray()
                self._on_message(binary)
        elif isinstance(event, Ping):
            self._write(self._ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            if self._ws.state is ConnectionState.REMOTE_CLOSING:
                self._write(self._ws.send(event.response()))
            self._peer_gone()

    def _peer_gone(self) -> None:
        if not self._peer_closed.is_set():
            self._peer_closed.set()
            self._on_closed()

    # ---- handshake and closing ----------------------------------------------------------------

    async def _handshake(
        self, host: str, resource: str, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self._write(self._ws.send(Request(host=host, target=resource, extra_headers=headers)))
        received = 0
        while True:
            await trio.lowlevel.wait_readable(self._sock)
            try:
                data = self._sock.recv(RECV_BYTES)
            except BlockingIOError:
                continue
            if not data:
                msg = "connection closed during the handshake"
                raise WsHandshakeError(msg)
            received += len(data)
            try:
                self._ws.receive_data(data)
                events = list(self._ws.events())
            except RemoteProtocolError as exc:
                raise WsHandshakeError(str(exc)) from exc
            for event in events:
                if isinstance(event, AcceptConnection):
                    return
                if isinstance(event, RejectConnection):
                    raise WsRejected(event.status_code)
                if isinstance(event, RejectData | Message):
                    continue  # a rejection body or early data: the outcome is already known
            if received > HANDSHAKE_MAX_BYTES:
                msg = "no upgrade answer"
                raise WsHandshakeError(msg)

    async def aclose(self, code: int = 1000) -> None:
        """Close handshake: send a close frame, wait for the peer's (read by the engine), then
        close TCP."""
        try:
            if self._ws.state is ConnectionState.OPEN:
                self._write(self._ws.send(CloseConnection(code=code)))
            self.resume_reading()
            await self._peer_closed.wait()
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection now (no close frame)."""
        self._drop()

    def _drop(self) -> None:
        if self._dropped:
            return
        self._dropped = True
        self._outbox_ready.set()
        if self._engine is not None:
            self._engine.unwatch(self._sock.fileno())
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()
        self._peer_gone()  # the connection is gone either way: whoever waits must learn it


def _ignore(message: str | bytes) -> None:
    pass


def _nothing() -> None:
    pass
