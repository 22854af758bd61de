"""A real FIX 4.4 counterparty: QuickFIX's initiator (PyPI ``quickfix``) behind a small API, for
the gateway's system tests and ``nexus bench fix``.

QuickFIX keeps its own sequence numbers in a file store (``store_dir``), so a ``FixClient``
stopped and started again on the same folder resumes its session as a real client does (Logon
with its next MsgSeqNum; a ResendRequest for what it missed). Application messages received are
kept in arrival order with their arrival instant (``time.perf_counter``).
"""

from __future__ import annotations

import sysconfig
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
    _initiator: Any = None
    _session_id: Any = None
    _keep: tuple[Any, ...] = ()

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
        import quickfix as fix

        self.store_dir.mkdir(parents=True, exist_ok=True)
        path = self.store_dir / "initiator.cfg"
        path.write_text(self.settings_text())
        settings = fix.SessionSettings(str(path))
        # QuickFIX's C++ side does not own these: they must outlive the initiator
        self._keep = (settings, _App(self), fix.FileStoreFactory(settings))
        self._initiator = fix.SocketInitiator(self._keep[1], self._keep[2], settings)
        self._initiator.start()

    def stop(self) -> None:
        """Log out (if logged on) and stop the initiator."""
        self._end(force=False)

    def drop(self) -> None:
        """Stop without waiting for the Logout exchange: the connection just ends."""
        self._end(force=True)

    def _end(self, force: bool) -> None:
        """Stop, then free QuickFIX's objects now, initiator first (left to the interpreter's exit,
        the application would be finalized after the ``quickfix`` module, and crash it)."""
        if self._initiator is not None:
            self._initiator.stop(force)
            self._initiator = None
        self._keep = ()

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
        self.wait(lambda: self.logons >= count and self._session_id is not None, timeout, "logon")

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
        """Send an application message; returns the instant it was handed to QuickFIX."""
        import quickfix as fix

        message = fix.Message()
        message.getHeader().setField(fix.BeginString("FIX.4.4"))
        message.getHeader().setField(fix.MsgType(msg_type))
        for tag, value in fields:
            message.setField(tag, value)
        now = time.perf_counter()
        if not fix.Session.sendToTarget(message, self._session_id):
            raise RuntimeError("QuickFIX did not take the message (no session)")
        return now

    def new_order(self, cl_ord_id: str, symbol: str, side: str, qty: str, ord_type: str = "2",
                  price: str | None = None, **extra: str) -> float:  # fmt: skip
        fields = [(11, cl_ord_id), (55, symbol), (54, side), (38, qty), (40, ord_type), (60, _now())]
        if price is not None:
            fields.append((44, price))
        fields += [(int(tag.lstrip("t")), value) for tag, value in extra.items()]
        return self.send("D", *fields)

    # -- QuickFIX callbacks (on its threads) ------------------------------------------------

    def _on(self, kind: str, raw: str | None = None) -> None:
        with self._cond:
            if kind == "logon":
                self.logons += 1
            elif kind == "logout":
                self.logouts += 1
            elif kind == "app" and raw is not None:
                self.received.append(Received(_parse(raw), time.perf_counter()))
            elif kind == "admin" and raw is not None:
                self.admin.append(Received(_parse(raw), time.perf_counter()))
            self._cond.notify_all()


def _now() -> str:
    from datetime import UTC, datetime

    ts = datetime.now(UTC)
    return ts.strftime("%Y%m%d-%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


def _app_base() -> type:
    import quickfix as fix

    base: type = fix.Application
    return base


class _App(_app_base()):  # type: ignore[misc]
    def __init__(self, client: FixClient) -> None:
        super().__init__()
        self.client = client

    def onCreate(self, session_id: Any) -> None:
        self.client._session_id = session_id

    def onLogon(self, session_id: Any) -> None:
        self.client._on("logon")

    def onLogout(self, session_id: Any) -> None:
        self.client._on("logout")

    def toAdmin(self, message: Any, session_id: Any) -> None:
        import quickfix as fix

        if self.client.password and message.getHeader().getField(35) == "A":
            message.setField(fix.Password(self.client.password))

    def fromAdmin(self, message: Any, session_id: Any) -> None:
        self.client._on("admin", message.toString())

    def toApp(self, message: Any, session_id: Any) -> None:
        return None

    def fromApp(self, message: Any, session_id: Any) -> None:
        self.client._on("app", message.toString())
