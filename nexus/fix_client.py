"""A real FIX 4.4 counterparty: QuickFIX's initiator (PyPI ``quickfix``) behind a small API, for
the gateway's system tests and ``nexus bench fix``.

Each ``FixClient`` runs its QuickFIX initiator in a child process of its own (started with
``spawn``): QuickFIX's C++ objects and threads never share an interpreter with the caller (a test
run's garbage collection once met a SWIG wrapper whose C++ object QuickFIX had freed), and the
child ends with ``os._exit`` once its initiator has stopped. Commands go to the child over one
queue, what QuickFIX hands over comes back over another, with the instant it arrived
(``time.perf_counter``, the system's monotonic clock, the same in both processes).

QuickFIX keeps its own sequence numbers in a file store (``store_dir``), so a ``FixClient``
stopped and started again on the same folder resumes its session as a real client does (Logon
with its next MsgSeqNum; a ResendRequest for what it missed).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sysconfig
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SOH = "\x01"


def data_dictionary() -> Path:
    """QuickFIX's FIX44.xml, shipped with the ``quickfix`` package."""
    return Path(sysconfig.get_paths()["data"]) / "share" / "quickfix" / "FIX44.xml"


@dataclass(frozen=True)
class Received:
    fields: tuple[tuple[int, str], ...]
    at: float  # time.perf_counter() when QuickFIX handed it over

    @property
    def msg_type(self) -> str:
        return self.get(35) or ""

    def get(self, tag: int) -> str | None:
        return next((v for t, v in self.fields if t == tag), None)


def _parse(raw: str) -> tuple[tuple[int, str], ...]:
    fields = []
    for part in raw.split(SOH):
        if part:
            tag, _, value = part.partition("=")
            fields.append((int(tag), value))
    return tuple(fields)


@dataclass
class FixClient:
    host: str
    port: int
    sender: str
    target: str
    store_dir: Path
    password: str | None = None
    heartbeat: int = 30
    reconnect_seconds: int = 1
    received: list[Received] = field(default_factory=list)
    admin: list[Received] = field(default_factory=list)
    logons: int = 0
    logouts: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _process: Any = None
    _commands: Any = None
    _events: Any = None
    _pump: threading.Thread | None = None

    def settings_text(self) -> str:
        return "\n".join([
            "[DEFAULT]",
            "ConnectionType=initiator",
            f"ReconnectInterval={self.reconnect_seconds}",
            f"FileStorePath={self.store_dir}",
            "StartTime=00:00:00",
            "EndTime=00:00:00",
            "UseDataDictionary=Y",
            f"DataDictionary={data_dictionary()}",
            "ValidateUserDefinedFields=N",
            "[SESSION]",
            "BeginString=FIX.4.4",
            f"SenderCompID={self.sender}",
            f"TargetCompID={self.target}",
            f"SocketConnectHost={self.host}",
            f"SocketConnectPort={self.port}",
            f"HeartBtInt={self.heartbeat}",
            "",
        ])  # fmt: skip

    def start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        path = self.store_dir / "initiator.cfg"
        path.write_text(self.settings_text())
        context = multiprocessing.get_context("spawn")
        self._commands = context.Queue()
        self._events = context.Queue()
        spec = {"settings": str(path), "sender": self.sender, "target": self.target, "password": self.password}
        self._process = context.Process(target=_child, args=(spec, self._commands, self._events), daemon=True)
        self._process.start()
        self._pump = threading.Thread(target=self._read_events, name=f"fix-client-{self.sender}", daemon=True)
        self._pump.start()

    def stop(self) -> None:
        """Log out (if logged on) and stop the initiator."""
        self._end(force=False)

    def drop(self) -> None:
        """Stop without waiting for the Logout exchange: the connection just ends."""
        self._end(force=True)

    def _end(self, force: bool) -> None:
        if self._process is None:
            return
        self._commands.put(("stop", force))
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._events.put(None)  # ends the pump
        if self._pump is not None:
            self._pump.join(10)
        self._process = self._pump = None

    def _read_events(self) -> None:
        while True:
            try:
                event = self._events.get()
            except (EOFError, OSError):
                return
            if event is None:
                return
            kind, raw, at = event
            with self._cond:
                if kind == "logon":
                    self.logons += 1
                elif kind == "logout":
                    self.logouts += 1
                elif kind == "app":
                    self.received.append(Received(_parse(raw), at))
                elif kind == "admin":
                    self.admin.append(Received(_parse(raw), at))
                self._cond.notify_all()

    # -- waiting ----------------------------------------------------------------------------

    def wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.sender}: {what} not within {timeout:.0f} s")
                self._cond.wait(min(left, 0.1))

    def wait_logon(self, timeout: float = 30.0, count: int = 1) -> None:
        self.wait(lambda: self.logons >= count, timeout, "logon")

    def wait_for(self, check: Callable[[Received], bool], timeout: float = 30.0, count: int = 1) -> list[Received]:
        """The first ``count`` application messages that pass ``check`` (waiting for them)."""
        found: list[Received] = []

        def enough() -> bool:
            found[:] = [m for m in self.received if check(m)]
            return len(found) >= count

        self.wait(enough, timeout, f"{count} matching messages")
        return found[:count]

    def reports(self, cl_ord_id: str) -> list[Received]:
        with self._cond:
            return [m for m in self.received if m.get(11) == cl_ord_id]

    # -- sending ----------------------------------------------------------------------------

    def send(self, msg_type: str, *fields: tuple[int, str]) -> float:
        """Send an application message; returns the instant it was handed over for sending."""
        if self._process is None:
            raise RuntimeError("the client is not started")
        now = time.perf_counter()
        self._commands.put(("send", msg_type, tuple(fields)))
        return now

    def new_order(self, cl_ord_id: str, symbol: str, side: str, qty: str, ord_type: str = "2",
                  price: str | None = None, **extra: str) -> float:  # fmt: skip
        fields = [(11, cl_ord_id), (55, symbol), (54, side), (38, qty), (40, ord_type), (60, _now())]
        if price is not None:
            fields.append((44, price))
        fields += [(int(tag.lstrip("t")), value) for tag, value in extra.items()]
        return self.send("D", *fields)


def _now() -> str:
    ts = datetime.now(UTC)
    return ts.strftime("%Y%m%d-%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


# -- the child process ---------------------------------------------------------------------


def _child(spec: dict[str, Any], commands: Any, events: Any) -> None:
    """Run one QuickFIX initiator until told to stop, then leave without the interpreter's
    teardown (QuickFIX's objects are never finalized by Python)."""
    import quickfix as fix

    class App(fix.Application):  # type: ignore[misc]
        def onCreate(self, session_id: Any) -> None:
            return None

        def onLogon(self, session_id: Any) -> None:
            events.put(("logon", "", time.perf_counter()))

        def onLogout(self, session_id: Any) -> None:
            events.put(("logout", "", time.perf_counter()))

        def toAdmin(self, message: Any, session_id: Any) -> None:
            if spec["password"] and message.getHeader().getField(35) == "A":
                message.setField(fix.Password(spec["password"]))

        def fromAdmin(self, message: Any, session_id: Any) -> None:
            events.put(("admin", message.toString(), time.perf_counter()))

        def toApp(self, message: Any, session_id: Any) -> None:
            return None

        def fromApp(self, message: Any, session_id: Any) -> None:
            events.put(("app", message.toString(), time.perf_counter()))

    code = 0
    try:
        settings = fix.SessionSettings(spec["settings"])
        app = App()
        factory = fix.FileStoreFactory(settings)
        initiator = fix.SocketInitiator(app, factory, settings)
        initiator.start()
        session_id = fix.SessionID("FIX.4.4", spec["sender"], spec["target"])
        while True:
            try:
                command = commands.get(timeout=1.0)
            except queue.Empty:
                continue
            if command[0] == "stop":
                initiator.stop(bool(command[1]))
                break
            _, msg_type, fields = command
            message = fix.Message()
            message.getHeader().setField(fix.BeginString("FIX.4.4"))
            message.getHeader().setField(fix.MsgType(msg_type))
            for tag, value in fields:
                message.setField(tag, value)
            fix.Session.sendToTarget(message, session_id)
    except BaseException:  # noqa: BLE001 - the child process's boundary: printed, then it exits 1
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        events.close()
        events.join_thread()
        os._exit(code)
