"""The FIX application over the in-memory venue (``orders_fakes``): the real orders service
and matching engine in process, the gateway's record in ``MemoryFixOrders``, and each engine
event routed by the real ``ReportRouter`` once the application call that caused it returns.

The only stand-in is the session: ``RecordingSession`` keeps what the application hands it (the
session layer, which sequences and sends, has its own tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from nexus_common.audit import MemoryAuditSink
from nexus_fix.application import FixApplication
from nexus_fix.fixorders import MemoryFixOrders
from nexus_fix.reports import OrderLocks, Outgoing, ReportRouter
from orders_fakes import Account, Venue

D = Decimal


async def inline(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def msg(msg_type: str, *fields: tuple[int, str]) -> Outgoing:
    """An inbound message (MsgSeqNum 7) with the application's view: ``msg_type`` and ``get``."""
    return Outgoing(msg_type, ((34, "7"), *fields))


def nos(
    cl: str,
    side: str = "1",
    qty: str = "10",
    ord_type: str = "2",
    price: str | None = "100",
    symbol: str = "AAPL",
    **tags: str,
) -> Outgoing:
    """A NewOrderSingle; ``t<tag>=value`` adds a field."""
    fields = [(11, cl), (55, symbol), (54, side), (38, qty), (40, ord_type), (60, "20260305-15:00:00")]
    if price is not None:
        fields.append((44, price))
    fields += [(int(tag[1:]), value) for tag, value in tags.items()]
    return msg("D", *fields)


@dataclass
class RecordingSession:
    session_id: str
    accounts: tuple[str, ...]
    sent: list[Outgoing] = field(default_factory=list)

    @property
    def config(self) -> Any:
        return SimpleNamespace(accounts=self.accounts)

    async def send(self, message: Any) -> None:
        self.sent.append(message)

    def take(self) -> list[Outgoing]:
        taken, self.sent = self.sent, []
        return taken


@dataclass
class FixWorld:
    venue: Venue
    store: MemoryFixOrders
    app: FixApplication
    router: ReportRouter
    audit: MemoryAuditSink
    sessions: dict[str, RecordingSession]
    routed: int = 0

    def session(self, name: str) -> RecordingSession:
        return self.sessions[name]

    def send(self, name: str, message: Outgoing) -> list[Outgoing]:
        """The session receives ``message``; the engine's events are routed; what the session got."""
        asyncio.run(self._send(self.sessions[name], message))
        return self.sessions[name].take()

    async def _send(self, session: RecordingSession, message: Outgoing) -> None:
        await self.app.on_message(session, message)
        await self.app.drain(session.session_id)
        await self.route()

    async def route(self) -> None:
        events = self.venue.events[self.routed :]
        self.routed = len(self.venue.events)
        await self.router.handle(events)


def fix_world() -> FixWorld:
    accounts = {
        "alice": Account(D("1000000"), D("1000000")),
        "bob": Account(D("1000000"), D("1000000"), pos=D(5000), sellable=D(5000)),
    }
    venue = Venue(accounts)
    store = MemoryFixOrders()
    locks = OrderLocks()
    audit = MemoryAuditSink()
    sessions = {
        "alice": RecordingSession("FIX.4.4:NEXUS->ALICE", ("alice",)),
        "bob": RecordingSession("FIX.4.4:NEXUS->BOB", ("bob",)),
    }
    by_id = {s.session_id: s for s in sessions.values()}

    async def deliver(session_id: str, messages: list[Outgoing]) -> bool:
        session = by_id.get(session_id)
        if session is None:
            return False
        session.sent.extend(messages)
        return True

    app = FixApplication(venue.service, store, locks, to_message=lambda out: out, audit=audit, clock=venue.clock,
                         run=inline)  # fmt: skip
    router = ReportRouter(store, deliver, locks, run=inline)
    return FixWorld(venue, store, app, router, audit, sessions)


def tags(message: Outgoing, *wanted: int) -> tuple[str | None, ...]:
    return tuple(message.get(tag) for tag in wanted)
