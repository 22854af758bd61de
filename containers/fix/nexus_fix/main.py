"""The gateway process (``python -m nexus_fix``): the composition root.

It wires the sessions table (``SessionSource``), the message store, the orders service (the
same classes and settings as the orders API: ``nexus_orders``), the application, the acceptor
and the execution-events consumer, then serves until SIGTERM/SIGINT, when it logs every session
out and stops. It prints a line with ``ready`` once it accepts connections (the local runtime
waits for it). Every setting comes from the environment the template gives the task.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nexus_common import aws
from nexus_common.audit import KinesisAuditSink
from nexus_common.settings import NexusSettings, load_settings
from nexus_orders.settings import OrdersApiSettings
from nexus_orders.wiring import order_service
from pydantic import Field

from nexus_fix.acceptor import Acceptor
from nexus_fix.application import FixApplication
from nexus_fix.codec import Message
from nexus_fix.consumer import ExecutionEventsConsumer
from nexus_fix.fixorders import DynamoFixOrders
from nexus_fix.reports import OrderLocks, Outgoing, ReportRouter
from nexus_fix.session import Application, Session, SessionConfig
from nexus_fix.sessions import DynamoSessions, verify_password
from nexus_fix.store import DynamoStore, MessageStore

log = logging.getLogger("nexus_fix")


class GatewaySettings(NexusSettings):
    fix_comp_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    fix_port: int = Field(ge=0, le=65535)
    fix_bind_address: str
    fix_sessions_table: str
    fix_store_table: str
    fix_orders_table: str
    execution_events_stream: str
    fix_events_poll_seconds: float = Field(default=0.2, gt=0, le=5)
    fix_worker_threads: int = Field(default=16, ge=1, le=256)  # session store, reports consumer
    fix_entry_threads: int = Field(default=8, ge=1, le=256)  # order entry (the orders service)


def to_message(out: Outgoing) -> Message:
    return Message.new(out.msg_type, *out.fields)


class TableSessionSource:
    """``SessionSource`` over the sessions table. ``get(our CompID, their CompID)``: the table is
    keyed as the counterparty writes its Logon (SenderCompID = theirs, TargetCompID = ours)."""

    def __init__(self, sessions: DynamoSessions, comp_id: str) -> None:
        self.sessions = sessions
        self.comp_id = comp_id

    async def get(self, sender_comp_id: str, target_comp_id: str) -> SessionConfig | None:
        if sender_comp_id != self.comp_id:
            return None
        record = await asyncio.to_thread(self.sessions.get, target_comp_id, sender_comp_id)
        if record is None:
            return None
        stored = record.password_hash

        def check(username: str | None, password: str | None) -> bool:
            return verify_password(stored, password)

        return SessionConfig.from_settings(
            sender_comp_id, target_comp_id, dict(record.settings), accounts=record.accounts,
            password_check=check if stored else None,
        )  # fmt: skip


class SessionSender:
    """Hands reports to a session by id: the live ``Session`` of the acceptor, or, for a session
    that has not logged on since the gateway started, a ``Session`` made for it now (its
    messages are stored and go out on reconnection by the resend rules)."""

    def __init__(self, acceptor: Acceptor, source: TableSessionSource, store: MessageStore, app: Application) -> None:
        self.acceptor = acceptor
        self.source = source
        self.store = store
        self.app = app

    async def __call__(self, session_id: str, messages: list[Outgoing]) -> bool:
        session = self.acceptor.sessions.get(session_id)
        if session is None:
            ours, _, theirs = session_id.partition(":")[2].partition("->")
            config = await self.source.get(ours, theirs)
            if config is None:
                return False
            session = self.acceptor.sessions.setdefault(session_id, Session(config, self.store, self.app))
        for out in messages:
            await session.send(to_message(out))
        return True


async def serve(settings: GatewaySettings, orders: OrdersApiSettings, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    # Order entry's blocking calls have threads of their own: a burst of orders never queues the
    # session layer's store or the reports consumer (the default executor) behind it.
    loop.set_default_executor(ThreadPoolExecutor(settings.fix_worker_threads, thread_name_prefix="fix-io"))
    entry_pool = ThreadPoolExecutor(settings.fix_entry_threads, thread_name_prefix="fix-entry")

    async def entry(fn: Callable[..., Any], *args: Any) -> Any:
        return await loop.run_in_executor(entry_pool, functools.partial(fn, *args))

    store = DynamoStore(aws.dynamodb_table(settings.fix_store_table))
    fix_orders = DynamoFixOrders(settings.fix_orders_table)
    source = TableSessionSource(DynamoSessions(settings.fix_sessions_table), settings.fix_comp_id)
    locks = OrderLocks()
    application = FixApplication(order_service(orders), fix_orders, locks, to_message,
                                 audit=KinesisAuditSink(orders.audit_stream), run=entry)  # fmt: skip
    acceptor = Acceptor(source, store, application, host=settings.fix_bind_address, port=settings.fix_port)
    router = ReportRouter(fix_orders, SessionSender(acceptor, source, store, application), locks)
    consumer = ExecutionEventsConsumer(aws.client("kinesis"), settings.execution_events_stream, fix_orders, router,
                                       poll_seconds=settings.fix_events_poll_seconds)  # fmt: skip
    await consumer.start()  # reports flow before the first order can be entered
    await acceptor.start()
    print(f"nexus-fix ready: {settings.fix_comp_id} on {acceptor.host}:{acceptor.port}", flush=True)
    try:
        await stop.wait()
    finally:
        acceptor.stop_reading()  # no new frame is taken; the orders being entered finish first
        await application.drain_all()
        await acceptor.stop()
        await consumer.stop()
        log.info("nexus-fix stopped")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stdout)  # fmt: skip
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = load_settings(GatewaySettings)
    orders = load_settings(OrdersApiSettings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, orders, stop)

    asyncio.run(run())
    return 0
