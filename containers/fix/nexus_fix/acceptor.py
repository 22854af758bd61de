"""The asyncio TCP acceptor: many concurrent, independent FIX sessions.

Each connection has its own reader task and frame splitter (bounded by ``max_message_size``);
its first message must be a valid Logon for a session the ``SessionSource`` knows, within
``logon_timeout`` seconds, else the connection is closed unanswered.

A logged-on connection is read as fast as its client sends: each frame is stamped with when it
was read and waits in the connection's ``Inbound`` (bounded by ``inbound_limit`` bytes; past it,
reading pauses and TCP pushes back) for the session to take it, in order. A session whose order
entry is behind its client (a burst faster than the platform enters orders) then judges each
message's SendingTime against when the message arrived, not against when its turn came, and a
client whose messages wait unprocessed is not silent (no TestRequest, no disconnect). A frame
is processed, and its MsgSeqNum counted, only when its turn comes: frames still waiting when the
gateway stops reading are left to the client to send again at its next logon. Writes never wait: a
connection whose unsent bytes exceed ``write_buffer_limit`` (a client that stopped reading) is
aborted, so it cannot hold up a sender writing to many sessions. An error while handling one
connection's input closes that connection only.

    acceptor = Acceptor(sessions, store, application, port=9878)
    await acceptor.start()
    ...
    await acceptor.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from datetime import datetime

from nexus_fix import codec
from nexus_fix.codec import FrameSplitter, Garbled, IncorrectBeginString, SessionReject, UnsupportedMessageType
from nexus_fix.session import Application, Clock, Session, SessionSource, resolve
from nexus_fix.store import MessageStore

log = logging.getLogger("nexus_fix.acceptor")

READ_SIZE = 64 * 1024
FAIR_SHARE = 32  # frames of one connection handled before the others get their turn
INBOUND_LIMIT = 16 * 1024 * 1024  # bytes of frames read and not yet processed, per connection


class Inbound:
    """The frames read from one connection and not processed yet, in order, each with when it was
    read. Bounded in bytes: the reader waits for room before reading more (``room``)."""

    def __init__(self, limit: int) -> None:
        self._frames: deque[tuple[bytes, datetime]] = deque()
        self._bytes = 0
        self._limit = limit
        self._ended = False
        self._stopped = False
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: bytes, received_at: datetime) -> None:
        if self._stopped:
            return  # nobody takes it: the connection is ending
        self._frames.append((frame, received_at))
        self._bytes += len(frame)
        self._ready.set()
        if self._bytes >= self._limit:
            self._room.clear()

    def end(self) -> None:
        """No more frames come (the connection's end): ``get`` gives None once the rest is taken."""
        self._ended = True
        self._ready.set()

    def stop(self) -> None:
        """Nothing more is taken (the session is done with the connection): the frames waiting are
        dropped unprocessed, and the reader no longer waits for room."""
        self._stopped = self._ended = True
        self._frames.clear()
        self._bytes = 0
        self._ready.set()
        self._room.set()

    async def room(self) -> None:
        """Wait while the frames waiting fill the bound."""
        await self._room.wait()

    async def get(self) -> tuple[bytes, datetime] | None:
        """The next frame and when it was read; None at the end."""
        while not self._frames:
            if self._ended:
                return None
            self._ready.clear()
            await self._ready.wait()
        frame, received_at = self._frames.popleft()
        self._bytes -= len(frame)
        if self._bytes < self._limit:
            self._room.set()
        return frame, received_at


class Connection:
    """``Transport`` over an asyncio StreamWriter, with a bounded write buffer."""

    def __init__(self, writer: asyncio.StreamWriter, limit: int) -> None:
        self._writer = writer
        self._limit = limit
        self._closed = False
        self.peer = writer.get_extra_info("peername")
        self.dropped_slow = False
        self.inbound: Inbound | None = None  # once logged on: the frames read, not yet processed
        # drain() waits from half the bound (the resend's pace), the write aborts past all of it
        writer.transport.set_write_buffer_limits(high=limit // 2)

    @property
    def closed(self) -> bool:
        return self._closed or self._writer.is_closing()

    @property
    def unprocessed(self) -> int:
        """Frames read from the client and not processed yet (the session's liveness counts them)."""
        return len(self.inbound) if self.inbound is not None else 0

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        self._writer.write(data)
        if self._writer.transport.get_write_buffer_size() > self._limit:
            log.warning("connection %s does not read (%d bytes unsent): dropped", self.peer,
                        self._writer.transport.get_write_buffer_size())
            self.dropped_slow = True
            self.abort()

    async def wait_writable(self, timeout: float = 30.0) -> None:
        """Wait while more than half the bound is unsent (a resend between pages); a connection
        that takes nothing for ``timeout`` seconds is dropped."""
        if self.closed or self._writer.transport.get_write_buffer_size() <= self._limit // 2:
            return
        try:
            await asyncio.wait_for(self._writer.drain(), timeout)
        except (TimeoutError, ConnectionError):
            self.abort()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()
        if self.inbound is not None:
            self.inbound.stop()

    def abort(self) -> None:
        self._closed = True
        self._writer.transport.abort()
        if self.inbound is not None:
            self.inbound.stop()


class Acceptor:
    def __init__(
        self,
        sessions: SessionSource,
        store: MessageStore,
        application: Application,
        *,
        host: str = "127.0.0.1",
        port: int = 9878,
        clock: Clock = codec.now_utc,
        max_message_size: int = codec.DEFAULT_MAX_MESSAGE_SIZE,
        write_buffer_limit: int = 1024 * 1024,
        logon_timeout: float = 10.0,
        tick: float = 0.25,
        socket_send_buffer: int | None = None,
        inbound_limit: int = INBOUND_LIMIT,
    ) -> None:
        self._source = sessions
        self._store = store
        self._app = application
        self.host = host
        self.port = port
        self._clock = clock
        self._max_message_size = max_message_size
        self._write_buffer_limit = write_buffer_limit
        self._logon_timeout = logon_timeout
        self._tick = tick
        self._socket_send_buffer = socket_send_buffer  # SO_SNDBUF per connection (None: the kernel's)
        self._inbound_limit = inbound_limit
        self.sessions: dict[str, Session] = {}
        self._server: asyncio.Server | None = None
        self._timer: asyncio.Task[None] | None = None
        self._connections: dict[asyncio.Task[None], Connection] = {}
        self.reading = True  # False: frames received from now on are not processed (shutdown)

    def stop_reading(self) -> None:
        """Stop listening and stop processing inbound frames (their MsgSeqNums stay unprocessed,
        so the counterparty sends them again at the next logon); sessions still send."""
        self.reading = False
        if self._server is not None:
            self._server.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=READ_SIZE)
        self.port = self._server.sockets[0].getsockname()[1]
        self._timer = asyncio.create_task(self._run_timer())
        log.info("FIX acceptor listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening, log out every session, close every connection."""
        if self._server is not None:
            self._server.close()
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        for session in list(self.sessions.values()):
            with contextlib.suppress(Exception):
                await session.logout("Gateway shutting down", disconnect=True)
        for conn in list(self._connections.values()):
            conn.abort()  # each reader sees its end and finishes
        if self._connections:
            _, pending = await asyncio.wait(list(self._connections), timeout=5)
            for task in pending:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def _run_timer(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            for session in list(self.sessions.values()):
                try:
                    await session.on_timer()
                except Exception:  # one session's timer never stops the others
                    log.exception("%s: timer failed", session.session_id)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self._socket_send_buffer is not None:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._socket_send_buffer)
        conn = Connection(writer, self._write_buffer_limit)
        if task is not None:
            self._connections[task] = conn
        session: Session | None = None
        splitter = FrameSplitter(self._max_message_size)
        processing: asyncio.Task[None] | None = None
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._logon_timeout
            while not conn.closed:
                if conn.inbound is not None:
                    await conn.inbound.room()  # past the bound: the client waits (TCP) until frames are taken
                    data = await reader.read(READ_SIZE)
                else:
                    data = await asyncio.wait_for(reader.read(READ_SIZE), max(0.0, deadline - loop.time()))
                if not data:
                    break
                received_at = self._clock()
                for frame in splitter.feed(data):
                    if conn.inbound is not None:
                        conn.inbound.put(frame, received_at)
                    elif self.reading:
                        session = await self._logon(conn, frame)
                        if conn.closed:
                            break
                        if session is not None:  # logged on: from now on, frames wait their turn
                            conn.inbound = Inbound(self._inbound_limit)
                            processing = asyncio.create_task(self._process(conn, session, conn.inbound))
                if processing is not None and processing.done():
                    break
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            if processing is not None:
                processing.cancel()
            raise
        except Exception:  # per-connection boundary
            log.exception("connection %s failed; closing it", conn.peer)
        finally:
            if conn.inbound is not None:
                conn.inbound.end()
            if processing is not None:  # the frames read before the end are processed, as they came
                await asyncio.gather(processing, return_exceptions=True)
            if session is not None:
                with contextlib.suppress(Exception):
                    await session.connection_lost(conn)
            conn.close()
            if task is not None:
                self._connections.pop(task, None)

    async def _process(self, conn: Connection, session: Session, inbound: Inbound) -> None:
        """Hand a logged-on connection's frames to its session, in the order read, each with when
        it was read; until the connection ends, closes, or is no longer the session's."""
        try:
            count = 0
            while (item := await inbound.get()) is not None:
                if not self.reading:
                    continue  # left unprocessed: the client sends it again at its next logon
                if conn.closed or session.transport is not conn:  # gone, or no longer the session's
                    break
                frame, received_at = item
                await session.on_frame(frame, received_at)
                count += 1
                if count % FAIR_SHARE == 0:
                    await asyncio.sleep(0)  # a burst from one client never holds up the others
        except Exception:  # per-connection boundary
            log.exception("connection %s failed; closing it", conn.peer)
        finally:
            conn.close()  # the reader sees its end; what is still waiting is dropped (``Inbound.stop``)

    async def _logon(self, conn: Connection, frame: bytes) -> Session | None:
        """The first frame of a connection: a valid Logon of a known session, else close."""
        try:
            msg = codec.parse(frame)
            if msg.msg_type != "A":
                raise SessionReject(codec.INVALID_MSGTYPE, 35, "first message is not Logon")
            codec.validate(msg)
        except Garbled:
            return None  # dropped; the connection may still send a good Logon
        except (IncorrectBeginString, SessionReject, UnsupportedMessageType) as exc:
            log.info("connection %s: refused before logon: %s", conn.peer, exc)
            conn.close()
            return None
        sender, target = msg.get(56) or "", msg.get(49) or ""
        config = await resolve(self._source.get(sender, target))
        if config is None:
            log.warning("connection %s: logon for unknown session %s->%s", conn.peer, target, sender)
            conn.close()
            return None
        session = self.sessions.get(config.session_id)
        if session is None:
            session = Session(config, self._store, self._app, self._clock)
            self.sessions[config.session_id] = session
        elif not session.logged_on:
            session.config = config  # the table may have changed it
        if await session.logon(conn, msg):
            return session
        return None
