"""The Kinesis batch publisher shared by the services: ``PutRecords``, 500 records a call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from nexus_common import aws
from nexus_common.errors import Unavailable

BATCH_SIZE: Final = 500  # the most PutRecords takes
MAX_PARTITION_KEY: Final = 256  # characters


def put_records(stream: str, records: Sequence[tuple[str, bytes]], code: str = "stream_unavailable") -> None:
    """Put ``(partition key, data)`` records on ``stream`` in order, 500 a call. A call the
    stream refuses in part raises ``Unavailable(code)`` and the calls after it are not made: the
    caller fails and is retried, and every reader of the streams drops what it already has."""
    client = aws.client("kinesis")
    for start in range(0, len(records), BATCH_SIZE):
        chunk = records[start : start + BATCH_SIZE]
        answer = client.put_records(
            StreamName=stream,
            Records=[{"PartitionKey": key[:MAX_PARTITION_KEY], "Data": data} for key, data in chunk],
        )
        if answer.get("FailedRecordCount"):
            raise Unavailable(code, f"{answer['FailedRecordCount']} record(s) not put on {stream}; retry")
