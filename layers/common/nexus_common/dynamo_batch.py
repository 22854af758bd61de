"""Batch reads and writes of DynamoDB items, for consumers that touch many items per batch.

``batch_get`` reads items by key with ``BatchGetItem`` (100 keys a call, unprocessed keys asked
again), ``batch_get_tables`` the same over several tables in the same calls; ``batch_put`` writes
items with ``BatchWriteItem`` (25 a call, through boto3's batch writer, which resends unprocessed
items). A batch put has no condition: use it only for items whose every write is the same item (an
id derived from the event, immutable content), or after a read has shown the item does not exist
and nothing else can create it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

BATCH_GET_MAX: Final = 100


def batch_get(table: Any, keys: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
    """Every item of ``keys`` that exists, in no particular order. ``table`` is a boto3
    ``Table``; ``options`` go to each table request (``ConsistentRead``, ``ProjectionExpression``,
    ``ExpressionAttributeNames``). The calls go through the table's own client: its endpoint,
    credentials and Python values in and out, as the table's other calls."""
    items: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_MAX):
        request: dict[str, Any] = {table.name: {"Keys": keys[start : start + BATCH_GET_MAX], **options}}
        while request:
            answer = table.meta.client.batch_get_item(RequestItems=request)
            items.extend(answer.get("Responses", {}).get(table.name, []))
            request = answer.get("UnprocessedKeys") or {}
    return items


def batch_get_tables(
    reads: dict[Any, list[dict[str, Any]]],
    table_options: Mapping[str, Mapping[str, Any]] | None = None,
    **options: Any,
) -> dict[str, list[dict[str, Any]]]:
    """``batch_get`` over several tables at once: each ``BatchGetItem`` carries up to 100 keys,
    whichever tables they belong to. ``reads`` maps a boto3 ``Table`` to its keys; the answer maps
    each table's name to the items that exist, in no particular order. ``options`` go to every
    table's request (``ConsistentRead``), ``table_options[name]`` to that table's only
    (``ProjectionExpression``, ``ExpressionAttributeNames``). The calls go through the first
    table's client."""
    if not reads:
        return {}
    client = next(iter(reads)).meta.client
    found: dict[str, list[dict[str, Any]]] = {table.name: [] for table in reads}
    wanted = [(table.name, key) for table, keys in reads.items() for key in keys]
    per_table = {table.name: {**options, **(table_options or {}).get(table.name, {})} for table in reads}
    for start in range(0, len(wanted), BATCH_GET_MAX):
        request: dict[str, Any] = {}
        for name, key in wanted[start : start + BATCH_GET_MAX]:
            request.setdefault(name, {"Keys": [], **per_table[name]})["Keys"].append(key)
        while request:
            answer = client.batch_get_item(RequestItems=request)
            for name, items in answer.get("Responses", {}).items():
                found[name].extend(items)
            request = answer.get("UnprocessedKeys") or {}
    return found


def batch_put(table: Any, items: Iterable[dict[str, Any]], key: tuple[str, ...]) -> int:
    """Put every item (the last one wins when two share ``key``); returns how many were put."""
    unique = {tuple(item[name] for name in key): item for item in items}
    if not unique:
        return 0
    with table.batch_writer() as writer:
        for item in unique.values():
            writer.put_item(Item=item)
    return len(unique)
