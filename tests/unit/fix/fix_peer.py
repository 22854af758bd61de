"""Helpers for the FIX session-layer tests: the acceptor on its own event loop in a thread, a
trivial application (acks every NewOrderSingle with an ExecutionReport), a real QuickFIX
initiator, and a raw-socket peer for the bytes QuickFIX would never send."""

from __future__ import annotations

import asyncio
import gc
import itertools
import queue
import socket
import sysconfig
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import quickfix as fix
from nexus_fix.acceptor import Acceptor
from nexus_fix.codec import FrameSplitter, Message, parse, utc_timestamp
from nexus_fix.session import SessionConfig, SessionHandle
from nexus_fix.store import MemoryStore, MessageStore

T = TypeVar("T")
ACCEPTOR = "NEXUS"
FIX44_XML = Path(sysconfig.get_paths()["data"]) / "share" / "quickfix" / "FIX44.xml"


class Sessions:
    """A ``SessionSource`` over a dict."""

    def __init__(self, *configs: SessionConfig) -> None:
        self.configs = {(c.sender_comp_id, c.target_comp_id): c for c in configs}

    def get(self, sender: str, target: str) -> SessionConfig | None:
        return self.configs.get((sender, target))


def config(client: str, **kw: Any) -> SessionConfig:
    return SessionConfig(ACCEPTOR, client, accounts=(f"ACC-{client}",), **kw)


class AckApp:
    """The test application: records what it sees; answers each NewOrderSingle with an
    ExecutionReport (New) carrying the order's ClOrdID."""

    def __init__(self) -> None:
        self.logons: list[str] = []
        self.logouts: list[str] = []
        self.messages: list[tuple[str, Message]] = []
        self._ids = itertools.count(1)

    async def on_logon(self, session: SessionHandle) -> None:
        self.logons.append(session.session_id)

    async def on_logout(self, session: SessionHandle) -> None:
        self.logouts.append(session.session_id)

    async def on_message(self, session: SessionHandle, message: Message) -> None:
        self.messages.append((session.session_id, message))
        if message.msg_type == "D":
            await session.send(ack(message, next(self._ids)))

    def orders(self, session_id: str) -> list[str]:
        return [m.get(11) or "" for s, m in self.messages if s == session_id and m.msg_type == "D"]


def ack(order: Message, n: int) -> Message:
    return Message.new(
        "8",
        (37, f"O-{order.get(11)}"), (11, order.get(11) or ""), (17, f"E-{n}"), (150, "0"), (39, "0"),
        (55, order.get(55) or ""), (54, order.get(54) or "1"), (151, order.get(38) or "0"), (14, "0"), (6, "0"),
    )


def report(cl_ord_id: str, n: int) -> Message:
    return Message.new(
        "8", (37, f"O-{cl_ord_id}"), (11, cl_ord_id), (17, f"E-{n}"), (150, "4"), (39, "4"),
        (55, "AAPL"), (54, "1"), (151, "0"), (14, "0"), (6, "0"),
    )


class LoopThread:
    """An asyncio loop in a daemon thread; ``run(coro)`` waits for a coroutine's result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T], timeout: float = 10.0) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return fut.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class Gateway:
    """An acceptor on a LoopThread; ``restart`` is a new Acceptor on the same port and store."""

    def __init__(self, *configs: SessionConfig, store: MessageStore | None = None, app: AckApp | None = None,
                 **kw: Any) -> None:
        self.loop = LoopThread()
        self.source = Sessions(*configs)
        self.store = store or MemoryStore()
        self.app = app or AckApp()
        self.kw = kw
        self.port = 0
        self.acceptor: Acceptor | None = None

    def start(self) -> Gateway:
        async def go() -> Acceptor:
            acceptor = Acceptor(self.source, self.store, self.app, port=self.port, **self.kw)
            await acceptor.start()
            return acceptor

        self.acceptor = self.loop.run(go())
        self.port = self.acceptor.port
        return self

    def stop(self) -> None:
        if self.acceptor is not None:
            self.loop.run(self.acceptor.stop())
            self.acceptor = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self.loop.close()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def session(self, client: str) -> Any:
        assert self.acceptor is not None
        return self.acceptor.sessions[f"FIX.4.4:{ACCEPTOR}->{client}"]

    def send(self, client: str, message: Message) -> None:
        self.loop.run(self.session(client).send(message))


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy (an event-driven wait, bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# -- a real QuickFIX initiator -------------------------------------------------------------------


class _QfApp(fix.Application):  # type: ignore[misc]
    def __init__(self, peer: QuickFixClient) -> None:
        super().__init__()
        self.peer = peer

    def onCreate(self, session_id: Any) -> None:
        self.peer.session_id = session_id

    def onLogon(self, session_id: Any) -> None:
        self.peer.logons += 1

    def onLogout(self, session_id: Any) -> None:
        self.peer.logouts += 1

    def toAdmin(self, message: Any, session_id: Any) -> None:
        if self.peer.password is not None and message.getHeader().getField(35) == "A":
            message.setField(fix.Username(self.peer.client))
            message.setField(fix.Password(self.peer.password))

    def fromAdmin(self, message: Any, session_id: Any) -> None:
        self.peer.admin.put(parse(message.toString().encode("latin-1")))

    def toApp(self, message: Any, session_id: Any) -> None:
        pass

    def fromApp(self, message: Any, session_id: Any) -> None:
        self.peer.app.put(parse(message.toString().encode("latin-1")))


class QuickFixClient:
    """A QuickFIX/C++ initiator (the ``quickfix`` binding) for one session. Its store is in memory
    (sequence numbers kept across reconnections of this object only) unless ``FileStorePath`` is
    given (kept across objects)."""

    def __init__(self, port: int, client: str, workdir: Path, heartbeat: int = 1, password: str | None = None,
                 **settings: str) -> None:
        self.client = client
        self.password = password
        self.logons = 0
        self.logouts = 0
        self.session_id: Any = None
        self.app: queue.Queue[Message] = queue.Queue()
        self.admin: queue.Queue[Message] = queue.Queue()
        extra = "".join(f"{k}={v}\n" for k, v in settings.items())
        cfg = workdir / f"{client}.cfg"
        cfg.write_text(
            "[DEFAULT]\nConnectionType=initiator\nReconnectInterval=1\nStartTime=00:00:00\nEndTime=00:00:00\n"
            f"UseDataDictionary=Y\nDataDictionary={FIX44_XML}\nSocketNodelay=Y\n"
            f"[SESSION]\nBeginString=FIX.4.4\nSenderCompID={client}\nTargetCompID={ACCEPTOR}\n"
            f"SocketConnectHost=127.0.0.1\nSocketConnectPort={port}\nHeartBtInt={heartbeat}\n{extra}"
        )
        self._settings = fix.SessionSettings(str(cfg))
        self._qfapp = _QfApp(self)
        store = fix.FileStoreFactory(self._settings) if "FileStorePath" in settings else fix.MemoryStoreFactory()
        self._initiator: Any = fix.SocketInitiator(self._qfapp, store, self._settings)

    def start(self) -> QuickFixClient:
        self._initiator.start()
        return self

    def stop(self) -> None:
        """Stop and destroy the initiator: QuickFIX keeps a process-wide registry of sessions by
        SessionID, and a stopped initiator still alive would keep this one's name."""
        if self._initiator is not None:
            self._initiator.stop(True)
            self._initiator = None
            gc.collect()

    def logged_on(self) -> bool:
        return self._initiator is not None and bool(self._initiator.isLoggedOn())

    def send(self, message: fix.Message) -> None:
        fix.Session.sendToTarget(message, self.session_id)

    def new_order(self, cl_ord_id: str, qty: str = "100") -> None:
        msg = fix.Message()
        msg.getHeader().setField(fix.MsgType("D"))
        msg.setField(fix.ClOrdID(cl_ord_id))
        msg.setField(fix.Symbol("AAPL"))
        msg.setField(fix.Side(fix.Side_BUY))
        msg.setField(fix.TransactTime())
        msg.setField(fix.OrderQty(float(qty)))
        msg.setField(fix.OrdType(fix.OrdType_LIMIT))
        msg.setField(fix.Price(150.25))
        self.send(msg)

    def test_request(self, test_id: str) -> None:
        msg = fix.Message()
        msg.getHeader().setField(fix.MsgType("1"))
        msg.setField(fix.TestReqID(test_id))
        self.send(msg)

    def next_app(self, timeout: float = 10.0) -> Message:
        return self.app.get(timeout=timeout)

    def admin_of_type(self, msg_type: str, timeout: float = 10.0) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.admin.get(timeout=max(0.01, deadline - time.monotonic()))
            if msg.msg_type == msg_type:
                return msg

    @property
    def next_sender(self) -> int:
        return int(fix.Session.lookupSession(self.session_id).getExpectedSenderNum())

    @property
    def next_target(self) -> int:
        return int(fix.Session.lookupSession(self.session_id).getExpectedTargetNum())


# -- a raw socket peer ---------------------------------------------------------------------------


class RawPeer:
    """A plain TCP client speaking FIX by hand: for garbage, truncated frames and silence."""

    def __init__(self, port: int, client: str, clock: Callable[[], Any] | None = None,
                 receive_buffer: int | None = None) -> None:
        self.client = client
        self.sock = socket.socket()
        if receive_buffer is not None:  # before connect, so the window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.splitter = FrameSplitter()
        self.frames: list[Message] = []
        self.seq = 1
        self._clock = clock

    def frame(self, msg_type: str, *fields: tuple[int, object], seq: int | None = None,
              header: tuple[tuple[int, object], ...] = ()) -> bytes:
        from nexus_fix.codec import now_utc

        now = self._clock() if self._clock else now_utc()
        msg = Message.new(msg_type, (49, self.client), (56, ACCEPTOR), (34, seq if seq is not None else self.seq),
                          (52, utc_timestamp(now)), *header, *fields)
        if seq is None:
            self.seq += 1
        return msg.encode()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def logon(self, heartbeat: int = 30, *extra: tuple[int, object]) -> Message:
        self.send(self.frame("A", (98, "0"), (108, heartbeat), *extra))
        return self.expect("A")

    def receive(self, timeout: float = 5.0) -> Message | None:
        """The next message from the acceptor; None when the connection is closed."""
        self.sock.settimeout(timeout)
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.frames.extend(parse(f) for f in self.splitter.feed(data))
        return self.frames.pop(0)

    def expect(self, msg_type: str, timeout: float = 5.0) -> Message:
        msg = self.receive(timeout)
        assert msg is not None, f"connection closed while waiting for {msg_type}"
        assert msg.msg_type == msg_type, f"expected {msg_type}, got {msg}"
        return msg

    def closed(self, timeout: float = 5.0) -> bool:
        """True once the acceptor has closed the connection (messages before it are dropped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.receive(max(0.01, deadline - time.monotonic())) is None:
                    return True
            except (ConnectionError, OSError):
                return True
        return False

    def close(self) -> None:
        self.sock.close()
