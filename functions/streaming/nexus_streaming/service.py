"""The application layer of streaming: what the WebSocket routes, the fan-out and the revocations
consumer do, over the connections store, the credential guard and the instruments.

* ``subscription``: a ``subscribe`` re-checks the connection's credential (``Guard``, cached for
  ``CREDENTIAL_CACHE_SECONDS``) and answers the channel's last number (the next message on it has
  ``seq + 1``); an ``unsubscribe`` forgets the channel. A market channel names an instrument
  that exists.
* ``publish_step``: one engine step's messages, per channel; each channel's watermark is the
  step's last engine seq, so a redelivered record (or an engine replay) publishes nothing twice.
  ``channels_of`` names a batch's channels beforehand, so the publisher reads their subscriber
  counts in one go (``Publisher.prepare``).
* ``close_ended``: an auth audit event that ends a credential closes the connections made with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from nexus_common.batch import PoisonRecord, decode_execution_events
from nexus_common.credentials import Credential
from nexus_common.errors import ValidationFailed
from nexus_common.guarded_push import Guard, StreamingConnections
from nexus_common.instrument_store import InstrumentLookup
from nexus_common.push import CONNECTION_TTL_SECONDS, Connection, Publisher, PublishReport

from nexus_streaming.domain import PUBLIC_CHANNELS, SubscriptionRequest, channel_id, control, fan_out
from nexus_streaming.revocations import CredentialRevoked, ended_credential


def subscription(
    request: SubscriptionRequest,
    connection: Connection,
    credential: Credential | None,
    store: StreamingConnections,
    guard: Guard,
    instruments: InstrumentLookup,
    wall_clock: Callable[[], float] = lambda: time.time(),  # looked up at each call
) -> dict[str, Any]:
    """Subscribe or unsubscribe the connection; the answer to post back to it."""
    channel = channel_id(request, connection)
    if request.channel in PUBLIC_CHANNELS and instruments.get(str(request.symbol)) is None:
        raise ValidationFailed("unknown_symbol", f"no instrument {request.symbol}", "symbol")
    if request.action == "subscribe":
        if not guard.allows(credential):
            raise CredentialRevoked("unauthorized", "the credential of this connection is no longer valid")
        store.subscribe_with(connection.connection_id, channel, int(wall_clock()) + CONNECTION_TTL_SECONDS, credential)
        # The channel's last number: the next message on it has seq + 1.
        return control("subscribed", channel=channel, seq=store.current_seq(channel))
    store.unsubscribe(connection.connection_id, channel)
    return control("unsubscribed", channel=channel)


def channels_of(records: Iterable[dict[str, Any]]) -> set[str]:
    """Every channel a batch of execution-events records publishes on (a record that cannot be
    read is left out here: it fails in its turn when it is published)."""
    channels: set[str] = set()
    for record in records:
        try:
            step = fan_out(decode_execution_events(KinesisStreamRecord(record)))
        except (PoisonRecord, KeyError, TypeError, ValueError):  # reported by the record's own handling
            continue
        if step is not None:
            channels.update(step.channels)
    return channels


def publish_step(events: Sequence[Any], publisher: Publisher, report: PublishReport) -> None:
    """Publish one record's messages (one engine step of one symbol), numbered per channel."""
    step = fan_out(events)
    if step is None:
        return
    for channel, messages in step.channels.items():
        publisher.publish(channel, messages, (step.symbol, step.last_seq), report)


def close_ended(event: dict[str, Any], guard: Guard) -> tuple[str, list[str]] | None:
    """Close the connections of the credential an auth audit event ends: (its kind, the closed
    connection ids), or None when the event ends no credential."""
    if event.get("source") != "auth":
        return None
    ended = ended_credential(event)
    if ended is None:
        return None
    return str(event.get("kind")), guard.close_matching(*ended)
