"""A lean WebSocket server on asyncio: websockets' sans-I/O protocol driven straight from transport callbacks.

Why not Granian for this process (measured, see docs/benchmarks.md): Granian's WebSocket layer is
tokio-tungstenite with its default ``WebSocketConfig``, which Granian does not let one change, and tungstenite
zero-fills a 128 KiB read buffer for every connection, so each idle connection costs ~150 KiB of RSS whatever
the interface (ASGI or RSGI), event loop or allocator. Here an idle connection is one Python object holding
websockets' parser and its asyncio transport: no task, no queue and no buffer of its own while it waits.

The server speaks just enough HTTP/1.1 for the WebSocket handshake on one path and for small plain ``GET``
routes (``/health``), each answered with ``Connection: close``. Every socket is bound with ``SO_REUSEPORT``
so that several processes can share one port, like the other Beacon processes under Granian.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import time
from collections.abc import Coroutine
from http import HTTPStatus
from typing import Any, cast

from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from app.core.logging import REQUEST_ID_HEADER, new_request_id, request_id_var, valid_request_id

logger = logging.getLogger("beacon.realtime")
# websockets logs every opened and closed connection at INFO: thousands of lines for nothing.
protocol_logger = logging.getLogger("beacon.realtime.protocol")
protocol_logger.setLevel(logging.WARNING)


def text_frame(data: bytes) -> bytes:
    """One unmasked, uncompressed text frame (what a server sends): built once, written to many sockets."""
    return Frame(Opcode.TEXT, data).serialize(mask=False)


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(body).encode()
    return Response(status, HTTPStatus(status).phrase, Headers({
        "Date": email.utils.formatdate(usegmt=True), "Connection": "close", "Content-Type": "application/json",
        "Content-Length": str(len(data)), **(headers or {})}), data)


class WebSocket(asyncio.Protocol):
    """One client connection: an HTTP request, then (once accepted) WebSocket frames."""

    __slots__ = ("_fragments", "_timer", "active", "last_seen", "protocol", "server", "transport")

    def __init__(self, server: WebSocketServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.protocol = ServerProtocol(max_size=server.max_message, logger=protocol_logger)
        self.last_seen = time.monotonic()
        """When something last arrived from the client (heartbeats)."""
        self.active = False
        """Between :meth:`WebSocketServer.opened` and :meth:`WebSocketServer.closed`."""
        self._timer: asyncio.TimerHandle | None = None
        """Closes the transport if the handshake or the closing handshake does not finish in time."""
        self._fragments: list[bytes] | None = None

    @property
    def open(self) -> bool:
        return self.protocol.state is OPEN

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, though they implement it.
        self.transport = cast(asyncio.Transport, transport)
        self._timer = asyncio.get_running_loop().call_later(self.server.handshake_timeout, self.transport.abort)

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        self.protocol.receive_data(data)
        self._flush()
        for event in self.protocol.events_received():
            if isinstance(event, Request):
                # Nothing more is read until the request is answered (authentication may query the database).
                self._transport().pause_reading()
                self.server.spawn(self._answer(event))
            elif isinstance(event, Frame):
                self._frame(event)

    def eof_received(self) -> bool:
        self.protocol.receive_eof()
        self._flush()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.protocol.receive_eof()  # idempotent; moves the protocol to CLOSED
        if self.active:
            self.active = False
            self.server.forget(self)

    # sending

    def send(self, text: str) -> None:
        """Send one text message; does nothing once the connection is closing."""
        with contextlib.suppress(InvalidState):
            self.protocol.send_text(text.encode())
            self._flush()

    def send_frame(self, frame: bytes) -> bool:
        """Write a frame made by :func:`text_frame`, unless the connection is closing.

        A client that left more than the server's ``send_buffer_limit`` unread is closed instead (1013, the
        close frame queued behind what it has not read yet); returns ``False`` then, and only then.
        """
        transport = self.transport
        if self.protocol.state is not OPEN or transport is None:
            return True
        if transport.get_write_buffer_size() > self.server.send_buffer_limit:
            self.close(1013, "client too slow")
            return False
        transport.write(frame)
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the transport is closed when it ends or after the close timeout."""
        if self.protocol.state is OPEN:
            self.protocol.send_close(code, reason)
            self._flush()

    # internals

    def _transport(self) -> asyncio.Transport:
        assert self.transport is not None
        return self.transport

    def _flush(self) -> None:
        transport = self._transport()
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()
        if self.protocol.close_expected() and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.server.close_timeout, transport.abort)

    async def _answer(self, request: Request) -> None:
        response: Response | None = None
        # This task's own context: the id is in every log line (and Sentry event) of this request.
        request_id_var.set(valid_request_id(request.headers.get(REQUEST_ID_HEADER)) or new_request_id())
        try:
            path = request.path.partition("?")[0]
            if path != self.server.path:
                response = await self.server.http(request)
            else:
                response = self.protocol.accept(request)
                if response.status_code == 101 and not await self.server.authorise(self, request):
                    response = self.protocol.reject(HTTPStatus.FORBIDDEN, "Forbidden\n")
        except Exception:
            logger.exception("cannot answer a request", extra={"path": request.path[:200]})
            response = self.protocol.reject(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error\n")
        transport = self._transport()
        if transport.is_closing():
            return
        self.protocol.send_response(response)
        self._flush()
        if self.protocol.state is OPEN:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self.active = True
            self.server.sockets.add(self)
            self.server.opened(self)
            transport.resume_reading()
        else:
            # A plain HTTP answer (Connection: close) or a refused handshake: nothing more will be read (reading
            # stays paused), so close now rather than when the handshake timer fires (a scrape every 15 s would
            # otherwise keep connections open for 10 s each). Buffered data is still sent first.
            transport.close()

    def _frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.TEXT or frame.opcode is Opcode.CONT:
            if not frame.fin:
                self._fragments = [*(self._fragments or []), bytes(frame.data)]
                return
            data = bytes(frame.data) if self._fragments is None else b"".join([*self._fragments, frame.data])
            self._fragments = None
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self.protocol.fail(1007, "invalid UTF-8")
                self._flush()
                return
            try:
                self.server.received(self, text)
            except Exception:
                # A message the application cannot handle ends this connection with a close frame, not silence.
                logger.exception("message handling failed")
                self.close(1011, "internal error")
        elif frame.opcode is Opcode.BINARY:
            self.protocol.fail(1003, "text messages only")
            self._flush()


class WebSocketServer:
    """Accepts WebSockets on :attr:`path`; subclasses decide who may connect and what messages do."""

    path = "/ws"
    connection_class: type[WebSocket] = WebSocket

    def __init__(self, *, max_message: int = 65536, send_buffer_limit: int = 1 << 20,
                 handshake_timeout: float = 10.0, close_timeout: float = 10.0) -> None:
        self.max_message = max_message
        self.send_buffer_limit = send_buffer_limit
        """Bytes a client may leave unread (beyond what the kernel holds) before it is dropped as too slow."""
        self.handshake_timeout = handshake_timeout
        self.close_timeout = close_timeout
        self.sockets: set[WebSocket] = set()
        """The open connections."""
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._drained: asyncio.Event | None = None
        """Set when the last connection is gone, while :meth:`stop` waits for that."""

    async def start(self, host: str, port: int, backlog: int = 2048) -> None:
        loop = asyncio.get_running_loop()
        self._servers.append(await loop.create_server(lambda: self.connection_class(self), host, port, backlog=backlog,
                                                      reuse_port=True))

    async def stop(self, code: int = 1001, reason: str = "going away", timeout: float = 2.0) -> None:
        """Stop listening, close every connection (waiting up to ``timeout`` for the closing handshakes)."""
        for server in self._servers:
            server.close()
        for socket in tuple(self.sockets):
            socket.close(code, reason)
        if self.sockets:
            self._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), timeout)
        for socket in tuple(self.sockets):
            socket._transport().abort()
        await asyncio.sleep(0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def forget(self, socket: WebSocket) -> None:
        self.sockets.discard(socket)
        self.closed(socket)
        if self._drained is not None and not self.sockets:
            self._drained.set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a short-lived task for one connection (handshake, a message that needs the database)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # hooks

    async def authorise(self, socket: WebSocket, request: Request) -> bool:
        """Decide on a valid handshake request; ``False`` answers 403."""
        return True

    def opened(self, socket: WebSocket) -> None:
        """The handshake completed."""

    def received(self, socket: WebSocket, text: str) -> None:
        """A text message arrived."""

    def closed(self, socket: WebSocket) -> None:
        """An opened connection is gone."""

    async def http(self, request: Request) -> Response:
        """A request for another path than :attr:`path`."""
        return json_response(404, {"detail": "Not Found"})
