"""The FIX 4.4 session layer (acceptor side): Logon, liveness, sequence numbers, resend, reject,
logout, and the interface the application layer builds on.

One ``Session`` per SenderCompID/TargetCompID pair lives as long as the acceptor; a TCP
connection attaches to it at Logon and detaches at disconnect. Its sequence numbers and sent
application messages are in the ``MessageStore``, so they survive a reconnection and a restart.

The application sees ``SessionHandle`` (``session_id``, ``config``, ``send``) and implements
``Application`` (``on_logon``, ``on_logout``, ``on_message``). ``send`` sequences, stores and
writes an application message; while the session is disconnected the message is stored with its
sequence number and the counterparty gets it on reconnection by the normal resend rules (our
Logon carries the higher MsgSeqNum, it asks for the gap, we resend with PossDupFlag=Y).

Session configs come from a ``SessionSource``: ``get(sender_comp_id, target_comp_id)`` with
SenderCompID the acceptor's own (the Logon's TargetCompID 56) and TargetCompID the counterparty's
(the Logon's SenderCompID 49), QuickFIX's convention for a SessionID seen from our side. It may
be a plain or an ``async`` method.

Outcomes (FIX 4.4 session rules, volume 2):

| received | answer |
|---|---|
| garbled frame (BodyLength, CheckSum, 8/9/35 order) | dropped, no seq change |
| other BeginString | Logout "Incorrect BeginString", disconnect |
| MsgSeqNum missing | Logout "MsgSeqNum(34) not found", disconnect |
| MsgSeqNum, NewSeqNo, BeginSeqNo or EndSeqNo above 10**18 | Reject 373=5, no seq change (on Logon: closed) |
| field rule broken | Reject (3) 373/371/372/58, inbound seq incremented |
| FIX application MsgType not taken here | BusinessMessageReject (j) 380=3 |
| wrong CompID | Reject 373=9, Logout, disconnect |
| SendingTime off by more than MaxLatency | Reject 373=10, Logout, disconnect |
| MsgSeqNum too high | ResendRequest, message queued until the gap is filled |
| MsgSeqNum too low, no PossDupFlag | Logout "MsgSeqNum too low, expecting X but received Y", disconnect |
| MsgSeqNum too low, PossDupFlag=Y | ignored (OrigSendingTime checked) |
| second Logon for a logged-on session | the new connection is closed unanswered; the first continues |
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from nexus_fix import codec
from nexus_fix.codec import (
    Garbled,
    IncorrectBeginString,
    Message,
    SessionReject,
    UnsupportedMessageType,
    ValidationOptions,
)
from nexus_fix.store import MessageStore

log = logging.getLogger("nexus_fix.session")

Clock = Callable[[], datetime]
PasswordCheck = Callable[[str | None, str | None], bool]

MAX_QUEUED = 10_000  # messages held while a gap is filled; more and the session is logged out
RESEND_PAGE = 500  # stored messages read and written per step of a resend
OUTBOX_BATCH = 25  # application messages stored in one request (DynamoDB's BatchWriteItem takes 25)
ADMIN = frozenset("012345A")
MAX_SEQ = 10**18  # MsgSeqNum, NewSeqNo, BeginSeqNo, EndSeqNo above it are refused (Reject 373=5)
SEQ_TAGS = (34, 36, 7, 16)


def _beyond_bound(text: str | None) -> bool:
    """A sequence number field too large to take (checked on its digits before any ``int``)."""
    if text is None:
        return False
    digits = text.strip().lstrip("+-")
    if not digits.isdecimal():
        return False  # not a number: the codec's format check answers it
    return len(digits.lstrip("0")) > 19 or int(digits) > MAX_SEQ


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().upper() in ("Y", "YES", "TRUE", "1")


@dataclass(frozen=True)
class SessionConfig:
    """One session's settings. ``from_settings`` reads them under QuickFIX's names:
    ``MinHeartBtInt``/``MaxHeartBtInt`` (the HeartBtInt a Logon may ask for, seconds),
    ``ResetOnLogon``, ``ResetOnLogout``, ``ResetOnDisconnect``, ``MaxLatency`` (seconds, SendingTime
    accuracy), ``CheckLatency``, ``ValidateFieldsHaveValues``, ``ValidateUserDefinedFields``,
    ``LogonTimeout``, ``LogoutTimeout``.

    ``password_check(username, password)`` checks Logon's 553/554 (None: no password asked);
    it must compare in constant time (e.g. ``hmac.compare_digest`` of hashes)."""

    sender_comp_id: str
    target_comp_id: str
    accounts: tuple[str, ...] = ()
    min_heartbeat: int = 1
    max_heartbeat: int = 300
    reset_on_logon: bool = False
    reset_on_logout: bool = False
    reset_on_disconnect: bool = False
    max_latency: float = 120.0
    check_latency: bool = True
    validate_fields_have_values: bool = True
    validate_user_defined_fields: bool = True
    logout_timeout: float = 2.0
    password_check: PasswordCheck | None = field(default=None, compare=False, repr=False)

    @property
    def session_id(self) -> str:
        return f"{codec.BEGIN_STRING}:{self.sender_comp_id}->{self.target_comp_id}"

    @property
    def validation(self) -> ValidationOptions:
        return ValidationOptions(self.validate_fields_have_values, self.validate_user_defined_fields)

    @classmethod
    def from_settings(
        cls,
        sender_comp_id: str,
        target_comp_id: str,
        settings: Mapping[str, object] | None = None,
        *,
        accounts: tuple[str, ...] = (),
        password_check: PasswordCheck | None = None,
    ) -> SessionConfig:
        s = dict(settings or {})
        known = {
            "MinHeartBtInt", "MaxHeartBtInt", "ResetOnLogon", "ResetOnLogout", "ResetOnDisconnect",
            "MaxLatency", "CheckLatency", "ValidateFieldsHaveValues", "ValidateUserDefinedFields",
            "LogoutTimeout",
        }
        unknown = sorted(set(s) - known)
        if unknown:
            raise ValueError(f"unknown session settings: {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for name, attr, conv in (
            ("MinHeartBtInt", "min_heartbeat", int),
            ("MaxHeartBtInt", "max_heartbeat", int),
            ("ResetOnLogon", "reset_on_logon", _flag),
            ("ResetOnLogout", "reset_on_logout", _flag),
            ("ResetOnDisconnect", "reset_on_disconnect", _flag),
            ("MaxLatency", "max_latency", float),
            ("CheckLatency", "check_latency", _flag),
            ("ValidateFieldsHaveValues", "validate_fields_have_values", _flag),
            ("ValidateUserDefinedFields", "validate_user_defined_fields", _flag),
            ("LogoutTimeout", "logout_timeout", float),
        ):
            if name in s:
                conv_fn: Callable[[str], object] = conv
                try:
                    kwargs[attr] = conv_fn(str(s[name]).strip())
                except ValueError:
                    raise ValueError(f"{name}: not a valid value") from None
        config = cls(sender_comp_id, target_comp_id, tuple(accounts), password_check=password_check, **kwargs)
        if not 1 <= config.min_heartbeat <= config.max_heartbeat <= 3600:
            raise ValueError("MinHeartBtInt and MaxHeartBtInt: 1 <= MinHeartBtInt <= MaxHeartBtInt <= 3600")
        if not 0 < config.max_latency <= 86400:  # also refuses nan
            raise ValueError("MaxLatency: seconds, more than 0 and at most 86400")
        if not 0 < config.logout_timeout <= 60:
            raise ValueError("LogoutTimeout: seconds, more than 0 and at most 60")
        return config


class SessionHandle(Protocol):
    session_id: str
    config: SessionConfig

    async def send(self, message: Message) -> None: ...


class Application(Protocol):
    async def on_logon(self, session: SessionHandle) -> None: ...

    async def on_logout(self, session: SessionHandle) -> None: ...

    async def on_message(self, session: SessionHandle, message: Message) -> None: ...


class SessionSource(Protocol):
    def get(self, sender_comp_id: str, target_comp_id: str) -> SessionConfig | Awaitable[SessionConfig | None] | None:
        ...


class Transport(Protocol):
    """One TCP connection, as the session sees it: writes never block (the acceptor bounds the
    buffer and drops a connection that does not read)."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...

    @property
    def unprocessed(self) -> int:
        """Messages read from the client and not processed yet (they count as hearing from it)."""
        ...


async def resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def business_reject(ref_msg_type: str, reason: int, text: str, ref_seq: int | None = None,
                    ref_id: str | None = None) -> Message:
    """A BusinessMessageReject (j): BusinessRejectReason 380 (0 other, 1 unknown ID, 2 unknown
    security, 3 unsupported message type, 4 application not available, 5 conditionally required
    field missing, 6 not authorized, 7 DeliverTo firm not available)."""
    msg = Message.new("j")
    if ref_seq is not None:
        msg.append(45, ref_seq)
    msg.append(372, ref_msg_type)
    if ref_id is not None:
        msg.append(379, ref_id)
    msg.append(380, reason)
    msg.append(58, text)
    return msg


def _later(orig: str, sending: str) -> bool:
    """OrigSendingTime after SendingTime (either unreadable counts as after)."""
    try:
        return codec.parse_utc_timestamp(orig) > codec.parse_utc_timestamp(sending)
    except ValueError:
        return True


class Session:
    """The state machine of one FIX session (acceptor side). Inbound frames come from the one
    reader task of the attached connection, in order; ``send`` may be called from anywhere in
    the event loop."""

    def __init__(
        self,
        config: SessionConfig,
        store: MessageStore,
        application: Application,
        clock: Clock = codec.now_utc,
    ) -> None:
        self.config = config
        self.session_id = config.session_id
        self._store = store
        self._app = application
        self._clock = clock
        self._lock = asyncio.Lock()
        self._loaded = False
        self.next_sender = 1
        self.next_target = 1
        self.transport: Transport | None = None
        self.logged_on = False
        self.heartbeat = 30
        self._queue: dict[int, Message] = {}
        # application messages given to ``send`` and not yet sequenced, with what their senders await
        self._outbox: list[tuple[Message, asyncio.Future[None]]] = []
        self._resend_until: int | None = None  # end of the gap we asked for (0: open)
        self._last_sent = clock()
        self._last_received = clock()
        self._test_request: str | None = None
        self._test_counter = 0
        self._logout_sent_at: datetime | None = None

    # -- the interface for the application ---------------------------------------------------

    async def send(self, message: Message) -> None:
        """Sequence, store and send an application message (stored only while disconnected).

        Messages given while the session is busy (storing earlier ones) wait in an outbox; the
        next to hold the session sequences, stores and sends its own with those waiting by then,
        in the order given, ``OUTBOX_BATCH`` to a store request (``save_sent_many``). A busy
        session's messages are then not one store round trip apart each. Each is still stored
        before it is written, and a message whose storing failed is neither numbered nor sent:
        its sender gets the store's error, as before."""
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append((message, sent))
        try:
            async with self._lock:
                if not sent.done():  # not taken by an earlier holder
                    await self._send_outbox(sent)
        except BaseException:  # cancelled: a message not taken yet is never sent
            self._outbox = [waiting for waiting in self._outbox if waiting[1] is not sent]
            if sent.done() and not sent.cancelled():
                sent.exception()  # seen: what an earlier holder's store request raised for it
            raise
        await sent
        await self._drop_if_closed()

    async def _send_outbox(self, own: asyncio.Future[None]) -> None:
        """Sequence, store and send the outbox's messages up to the holder's own (``own``), with
        those waiting behind it in the same request (the lock held). The rest are for the next
        holder: each sender waits no longer than its own message needs."""
        while self._outbox and not own.done():
            batch, self._outbox = self._outbox[:OUTBOX_BATCH], self._outbox[OUTBOX_BATCH:]
            try:
                await self._load()
                first = self.next_sender
                frames = [(first + n, self._stamp(message, first + n)) for n, (message, _) in enumerate(batch)]
                await self._store.save_sent_many(self.session_id, frames)
                self.next_sender = first + len(frames)
                if self.logged_on:
                    for _, frame in frames:
                        self._write(frame)
                else:  # kept for the next logon: the number too, whatever happens to old messages
                    await self._store.set_next_sender(self.session_id, self.next_sender)
            except Exception as exc:  # noqa: BLE001 - raised in each of this batch's senders; the next batch is tried
                for _, sent in batch:
                    sent.set_exception(exc)
                continue
            except BaseException:  # the holder was cancelled: its batch is not sent; the rest wait for the next holder
                for _, sent in batch:
                    if sent is own:
                        sent.cancel()
                    else:
                        sent.set_exception(ConnectionError("not sent: storing it was interrupted"))
                raise
            for _, sent in batch:
                sent.set_result(None)

    async def _drop_if_closed(self) -> None:
        """A connection the acceptor dropped under a write (a client that stopped reading):
        the session is down now, whatever is sent next is stored for the next logon."""
        if self.transport is not None and self.transport.closed:
            await self.disconnect()

    # -- logon ---------------------------------------------------------------------------------

    async def _load(self) -> None:
        if not self._loaded:
            self.next_sender, self.next_target = await self._store.get_seq_nums(self.session_id)
            self._loaded = True

    async def _reset(self) -> None:
        async with self._lock:
            await self._store.reset(self.session_id)
            self.next_sender = self.next_target = 1
            self._loaded = True

    async def logon(self, transport: Transport, msg: Message) -> bool:
        """A validated Logon from a new connection. False (and the connection closed or logged
        out) if refused."""
        if self.logged_on and self.transport is not None and not self.transport.closed:
            log.warning("%s: second logon refused, the first connection continues", self.session_id)
            transport.close()
            return False
        if any(_beyond_bound(msg.get(tag)) for tag in SEQ_TAGS):
            log.warning("%s: logon refused: sequence number above %s", self.session_id, MAX_SEQ)
            transport.close()
            return False
        check = self.config.password_check
        # the password first, off the event loop (argon2), and before any state of the session
        # changes: a refused Logon moves no sequence number and writes nothing to the store
        if check is not None and not await asyncio.to_thread(check, msg.get(553), msg.get(554)):
            log.warning("%s: logon refused: bad credentials", self.session_id)
            self._refuse_unauthenticated(transport, "Logon refused")
            return False
        await self._load()
        heartbeat = int(msg.get(108) or "0")
        if not self.config.min_heartbeat <= heartbeat <= self.config.max_heartbeat:
            await self._refuse_logon(
                transport,
                f"HeartBtInt {heartbeat} out of range {self.config.min_heartbeat}..{self.config.max_heartbeat}",
            )
            return False
        if not self._latency_ok(msg, self._clock()):
            await self._refuse_logon(transport, "SendingTime accuracy problem")
            return False
        reset = msg.get(141) == "Y"
        seq = int(msg.get(34) or "0")
        async with self._lock:  # no application message may go out before our Logon
            if self.logged_on and self.transport is not None and not self.transport.closed:
                log.warning("%s: second logon refused, the first connection continues", self.session_id)
                transport.close()  # another Logon of this session won while this one was checked
                return False
            self._queue.clear()
            self._resend_until = None
            self._test_request = None
            self._logout_sent_at = None
            if reset or self.config.reset_on_logon:
                await self._store.reset(self.session_id)
                self.next_sender = self.next_target = 1
                if reset and seq != 1:
                    await self._send_unlocked(Message.new("5", (58, "ResetSeqNumFlag requires MsgSeqNum 1")),
                                              transport=transport)
                    transport.close()
                    return False
            if seq < self.next_target:
                text = f"MsgSeqNum too low, expecting {self.next_target} but received {seq}"
                await self._send_unlocked(Message.new("5", (58, text)), transport=transport)
                transport.close()
                return False
            self.transport = transport
            self.logged_on = True
            self.heartbeat = heartbeat
            self._last_received = self._clock()
            response = Message.new("A", (98, "0"), (108, heartbeat))
            if reset or self.config.reset_on_logon:
                response.append(141, "Y")
            await self._send_unlocked(response)
        if seq == self.next_target:
            await self._incr_target()
        else:
            await self._send_resend_request(self.next_target)
        log.info("%s: logged on (in %s, out %s)", self.session_id, self.next_target, self.next_sender)
        await self._app.on_logon(self)
        return True

    def _refuse_unauthenticated(self, transport: Transport, text: str) -> None:
        """Logout to a connection that did not authenticate: MsgSeqNum 1, nothing of the
        session's own numbers used, told or stored."""
        if not transport.closed:
            transport.write(self._stamp(Message.new("5", (58, text)), 1))
        transport.close()

    async def _refuse_logon(self, transport: Transport, text: str) -> None:
        await self._send_admin(Message.new("5", (58, text)), transport=transport)
        transport.close()

    # -- inbound -------------------------------------------------------------------------------

    async def on_frame(self, frame: bytes, received_at: datetime | None = None) -> None:
        """One frame from the attached connection (the frame splitter's output), read from it at
        ``received_at`` (default: now): its SendingTime is judged against that instant."""
        try:
            msg = codec.parse(frame)
        except Garbled as exc:
            log.info("%s: garbled frame dropped: %s", self.session_id, exc)
            return
        except IncorrectBeginString:
            await self.logout("Incorrect BeginString", disconnect=True)
            return
        self._last_received = now = self._clock()
        self._test_request = None  # any message answers for the counterparty's liveness
        seq_text = msg.get(34)
        if seq_text is None or not seq_text.isdecimal():
            await self.logout("MsgSeqNum(34) not found", disconnect=True)
            return
        for tag in SEQ_TAGS:  # before any state change: a number no store can hold is refused
            if _beyond_bound(msg.get(tag)):
                await self._reject(msg, SessionReject(codec.VALUE_OUT_OF_RANGE, tag, f"value above {MAX_SEQ}"))
                return
        try:
            codec.validate(msg, self.config.validation)
        except SessionReject as exc:
            if exc.ref_tag in (49, 56) and exc.reason in (codec.TAG_WITHOUT_VALUE, codec.REQUIRED_TAG_MISSING):
                exc = SessionReject(codec.COMPID_PROBLEM, exc.ref_tag)
            if exc.reason == codec.COMPID_PROBLEM:
                await self._reject(msg, exc)
                await self.logout("CompID problem", disconnect=True)
                return
            if msg.msg_type in ("A", "5"):
                await self.logout(exc.text, disconnect=True)
                return
            await self._reject(msg, exc)
            if int(seq_text) == self.next_target:
                await self._incr_target()
            return
        except UnsupportedMessageType as exc:
            await self._send_admin(
                business_reject(exc.msg_type, 3, "Unsupported Message Type", ref_seq=int(seq_text)), admin=False
            )
            if int(seq_text) == self.next_target:
                await self._incr_target()
            return
        await self._verify_and_process(msg, int(seq_text), received_at or now)

    async def _verify_and_process(self, msg: Message, seq: int, received_at: datetime) -> None:
        if msg.get(49) != self.config.target_comp_id or msg.get(56) != self.config.sender_comp_id:
            await self._reject(msg, SessionReject(codec.COMPID_PROBLEM, 49 if msg.get(49) != self.config.target_comp_id
                                                  else 56))
            await self.logout("CompID problem", disconnect=True)
            return
        if not self._latency_ok(msg, received_at):
            await self._reject(msg, SessionReject(codec.SENDING_TIME_ACCURACY, 52))
            await self.logout("SendingTime accuracy problem", disconnect=True)
            return
        mt = msg.msg_type
        if mt == "4" and msg.get(123) != "Y":
            await self._sequence_reset(msg)
            return
        expected = self.next_target
        if seq > expected:
            if mt == "2":
                await self._resend(msg)
            if mt == "5":
                await self._logout_received(msg)
                return
            if len(self._queue) >= MAX_QUEUED:
                await self.logout("Too many messages queued", disconnect=True)
                return
            self._queue[seq] = msg
            if self._resend_until is None:
                await self._send_resend_request(expected)
            return
        if seq < expected:
            if msg.get(43) == "Y":
                orig = msg.get(122)
                if orig is None:
                    await self._reject(msg, SessionReject(codec.REQUIRED_TAG_MISSING, 122))
                    return
                if _later(orig, msg.get(52) or ""):
                    await self._reject(msg, SessionReject(codec.SENDING_TIME_ACCURACY, 122))
                    await self.logout("SendingTime accuracy problem", disconnect=True)
                return
            await self.logout(f"MsgSeqNum too low, expecting {expected} but received {seq}", disconnect=True)
            return
        await self._process(msg, seq)
        await self._drain_queue()

    async def _drain_queue(self) -> None:
        while self.transport is not None and self.next_target in self._queue:
            seq = self.next_target
            msg = self._queue.pop(seq)
            await self._process(msg, seq, queued=True)
        if not self._queue:
            self._resend_until = None  # the gap we asked for is filled

    async def _process(self, msg: Message, seq: int, queued: bool = False) -> None:
        mt = msg.msg_type
        if mt == "4":  # GapFill
            await self._sequence_reset(msg)
            return
        # Heartbeat (0): its receipt (on_frame) was all the liveness check needed
        if mt == "1":
            await self._send_admin(Message.new("0", (112, msg.get(112) or "")))
        elif mt == "2":
            if not queued:
                await self._resend(msg)
        elif mt == "5":
            await self._incr_target()
            await self._logout_received(msg)
            return
        elif mt == "A":
            await self._reject(msg, SessionReject(codec.OTHER, text="Logon received while logged on"))
        elif mt not in ADMIN:
            try:
                await self._app.on_message(self, msg)
            except Exception:  # answered with a BusinessMessageReject
                log.exception("%s: application failed on %s seq %s", self.session_id, mt, seq)
                await self._send_admin(
                    business_reject(mt, 4, "Application not available", ref_seq=seq), admin=False
                )
        await self._incr_target()

    async def _incr_target(self) -> None:
        await self._store.set_next_target(self.session_id, self.next_target + 1)  # the store first
        self.next_target += 1

    async def _sequence_reset(self, msg: Message) -> None:
        new = int(msg.get(36) or "0")
        if new < self.next_target:
            text = f"Attempt to lower sequence number, invalid value NewSeqNo={new}"
            await self._reject(msg, SessionReject(codec.VALUE_OUT_OF_RANGE, 36, text))
            return
        await self._store.set_next_target(self.session_id, new)  # the store first: a failed write changes nothing
        self.next_target = new
        for stale in [s for s in self._queue if s < new]:
            del self._queue[stale]
        await self._drain_queue()

    async def _logout_received(self, msg: Message) -> None:
        if self._logout_sent_at is None:
            await self._send_admin(Message.new("5"))
        if self.config.reset_on_logout:
            await self._reset()
        await self.disconnect()

    # -- outbound ------------------------------------------------------------------------------

    def _stamp(self, message: Message, seq: int) -> bytes:
        fields = [(49, self.config.sender_comp_id), (56, self.config.target_comp_id), (34, str(seq)),
                  (52, codec.utc_timestamp(self._clock()))]
        body = [(t, v) for t, v in message.fields if t not in (8, 9, 10, 49, 56, 34, 52)]
        return Message(body[:1] + fields + body[1:]).encode()

    def _write(self, frame: bytes) -> None:
        transport = self.transport
        if transport is not None and self.logged_on and not transport.closed:
            transport.write(frame)
            self._last_sent = self._clock()

    async def _send_admin(self, message: Message, admin: bool = True, transport: Transport | None = None) -> None:
        """Send a session message (``admin=False``: a reject that is resent like application
        messages, BusinessMessageReject j), to the session's connection or the one given."""
        async with self._lock:
            await self._send_unlocked(message, admin, transport)
        await self._drop_if_closed()

    async def _send_unlocked(self, message: Message, admin: bool = True, transport: Transport | None = None) -> None:
        seq = self.next_sender
        frame = self._stamp(message, seq)
        if admin:
            await self._store.set_next_sender(self.session_id, seq + 1)
        else:
            await self._store.save_sent(self.session_id, seq, frame)
        self.next_sender = seq + 1
        transport = transport or self.transport
        if transport is not None and not transport.closed:
            transport.write(frame)
            self._last_sent = self._clock()

    async def _reject(self, msg: Message, exc: SessionReject) -> None:
        reject = Message.new("3", (45, msg.get(34) or "0"))
        if exc.ref_tag is not None:
            reject.append(371, exc.ref_tag)
        if msg.msg_type:
            reject.append(372, msg.msg_type)
        reject.append(373, exc.reason)
        reject.append(58, exc.text)
        log.info("%s: reject seq %s: %s", self.session_id, msg.get(34), exc)
        await self._send_admin(reject)

    async def _send_resend_request(self, begin: int) -> None:
        self._resend_until = 0
        await self._send_admin(Message.new("2", (7, begin), (16, 0)))

    async def _resend(self, msg: Message) -> None:
        """Answer a ResendRequest, reading RESEND_PAGE stored messages at a time and waiting for
        the connection to take what was written whenever half its write bound is unsent (a large
        resend is not a slow reader; a reader that takes nothing for 30 s is)."""
        begin = max(1, int(msg.get(7) or "1"))
        end = int(msg.get(16) or "0")
        async with self._lock:
            last = self.next_sender - 1
            if end == 0 or end > last:
                end = last
            if begin > end:
                return
            gap = begin
            resent_count = 0
            page = begin
            wait = getattr(self.transport, "wait_writable", None)
            while page <= end and self.transport is not None and not self.transport.closed:
                page_end = min(end, page + RESEND_PAGE - 1)
                now = codec.utc_timestamp(self._clock())
                for seq, frame in await self._store.get_sent(self.session_id, page, page_end):
                    try:
                        original = codec.parse(frame)
                    except (Garbled, IncorrectBeginString):
                        continue
                    if seq > gap:
                        self._write(self._gap_fill(gap, seq))
                    resent = Message([(t, v) for t, v in original.fields if t not in (8, 9, 10, 43, 122, 97)])
                    orig_time = original.get(52) or now
                    resent.set(52, now)
                    resent.fields.insert(4, (43, "Y"))
                    resent.fields.insert(5, (122, orig_time))
                    self._write(resent.encode())
                    resent_count += 1
                    gap = seq + 1
                    if wait is not None:
                        await wait()  # returns at once unless half the write bound is unsent
                page = page_end + 1
            if gap <= end:
                self._write(self._gap_fill(gap, end + 1))
            log.info("%s: resent %s..%s (%s application messages)", self.session_id, begin, end, resent_count)

    def _gap_fill(self, seq: int, new_seq: int) -> bytes:
        fill = Message.new("4", (123, "Y"), (36, new_seq))
        frame = self._stamp(fill, seq)
        msg = codec.parse(frame)
        msg.fields.insert(4, (43, "Y"))
        msg.fields.insert(5, (122, msg.get(52) or ""))
        return msg.encode()

    # -- liveness, logout, disconnect ---------------------------------------------------------

    def _latency_ok(self, msg: Message, received_at: datetime) -> bool:
        """SendingTime within MaxLatency of when the message arrived (a message that waited for
        its turn at the gateway did not travel for longer)."""
        if not self.config.check_latency:
            return True
        try:
            sent = codec.parse_utc_timestamp(msg.get(52) or "")
        except ValueError:
            return False
        return abs((received_at - sent).total_seconds()) <= self.config.max_latency

    async def on_timer(self) -> None:
        """Called by the acceptor about every quarter of a second: heartbeats, TestRequest after
        silence, disconnect after continued silence, logout timeout."""
        if not self.logged_on or self.transport is None:
            return
        now = self._clock()
        if self._logout_sent_at is not None:
            if (now - self._logout_sent_at).total_seconds() >= self.config.logout_timeout:
                await self.disconnect()
            return
        if self.transport.unprocessed:  # its messages are here, waiting their turn: not silent
            self._last_received = now
        silent = (now - self._last_received).total_seconds()
        if silent >= 2.4 * self.heartbeat:
            log.warning("%s: no message for %.1f s, disconnecting", self.session_id, silent)
            await self.disconnect()
            return
        if silent >= 1.2 * self.heartbeat and self._test_request is None:
            self._test_counter += 1
            self._test_request = f"TEST{self._test_counter}"
            await self._send_admin(Message.new("1", (112, self._test_request)))
        elif (now - self._last_sent).total_seconds() >= self.heartbeat:
            await self._send_admin(Message.new("0"))

    async def logout(self, text: str = "", *, disconnect: bool = False) -> None:
        """Send Logout; disconnect now, or when the counterparty answers (LogoutTimeout)."""
        if self.transport is None:
            return
        await self._send_admin(Message.new("5", (58, text)) if text else Message.new("5"))
        self._logout_sent_at = self._clock()
        if disconnect:
            await self.disconnect()

    async def disconnect(self) -> None:
        """Close the connection; the session waits for the next Logon."""
        transport = self.transport
        was_logged_on = self.logged_on
        self.transport = None
        self.logged_on = False
        self._queue.clear()
        self._resend_until = None
        self._logout_sent_at = None
        self._test_request = None
        if transport is not None:
            transport.close()
        if self.config.reset_on_disconnect:
            await self._reset()
        elif was_logged_on:
            async with self._lock:  # the numbers as the connection ends, beside the messages' own
                await self._store.set_next_sender(self.session_id, self.next_sender)
        if was_logged_on:
            log.info("%s: disconnected", self.session_id)
            await self._app.on_logout(self)

    async def connection_lost(self, transport: Transport) -> None:
        """The acceptor's notice that this connection is gone."""
        if self.transport is transport:
            await self.disconnect()
