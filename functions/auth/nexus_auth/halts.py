"""A halt or a resume as a command on ``order-commands`` (partition key = the symbol).

The command stream is the matching engine's journal: a halt that travels on it reaches the
running engine in order with the symbol's orders, and every replay of the journal (a failover, a
restart) halts at the same point, so it publishes the same events as the first run did. The
instruments table's ``status`` stays the order entry API's pre-check.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from nexus_common import aws
from nexus_common.events import HaltCommand, ResumeCommand, utc_now


class TradingStatusJournal:
    def __init__(self, stream_name: str, clock: Callable[[], datetime] = utc_now, client: Any = None) -> None:
        self.stream_name = stream_name
        self.clock = clock
        self._client = client

    def publish(self, symbol: str, halted: bool, reason: str) -> HaltCommand | ResumeCommand:
        command_id = f"{'halt' if halted else 'resume'}-{uuid.uuid4().hex}"
        model = HaltCommand if halted else ResumeCommand
        command = model(command_id=command_id, symbol=symbol, reason=reason, ts=self.clock())
        client = self._client or aws.client("kinesis")
        client.put_record(
            StreamName=self.stream_name,
            Data=command.model_dump_json().encode("utf-8"),
            PartitionKey=symbol,
        )
        return command
