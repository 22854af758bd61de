"""A ``Query`` of a table's partition (``nexus.local.partitions``) answers what moto answers.

The embedded AWS in a process of its own is compared with moto's own, unpatched, in-process
DynamoDB fed the same requests: partitions that grow, shrink and are rewritten, read with every
sort-key condition, from either end, with limits, start keys and filters; a sparse index, and the
whole table, read in pages."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from helpers import embedded_aws
from moto import mock_aws
from moto.dynamodb.models.dynamo_type import DynamoType

from nexus.local.partitions import Partition, key_range

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with embedded_aws(CREDENTIALS) as endpoint:
        yield endpoint


# Sort keys of each type: prefixes that share units, the last code point, a unit past a prefix's
STRINGS = ["A#", "A#1", "A#10", "A#2", "A", "A$", "B#", "B#0099", "B#0100", "é", "éa", "\U0010ffff", "\U0010ffffz",
           "a", "", "z\U0010ffff", "zz"]  # fmt: skip
NUMBERS = ["-5", "0", "1", "1.5", "2", "10", "99.99", "100", "1e3", "123456789012345678901234567890"]
INDEX_KEYS = [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "v", "KeyType": "RANGE"}]
PREFIXES = ["A#", "A", "B#0", "é", "\U0010ffff", "z", "q", "A#1"]


def _session(dynamodb: Any, seed: int) -> list[Any]:
    """Writes and reads of partitions, what each read answered (errors by code)."""
    rng = random.Random(seed)
    for name, kind in (("s", "S"), ("n", "N")):
        dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                         {"AttributeName": "sk", "KeyType": "RANGE"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                    {"AttributeName": "sk", "AttributeType": kind},
                                                    {"AttributeName": "g", "AttributeType": "S"},
                                                    {"AttributeName": "v", "AttributeType": "N"}],
                              GlobalSecondaryIndexes=[{"IndexName": "by-g", "Projection": {"ProjectionType": "ALL"},
                                                       "KeySchema": INDEX_KEYS}])  # fmt: skip
    answers: list[Any] = []

    def call(operation: str, **kwargs: Any) -> None:
        try:
            answer = getattr(dynamodb, operation)(**kwargs)
        except dynamodb.exceptions.ClientError as exc:
            answers.append((operation, exc.response["Error"]["Code"]))
            return
        answer.pop("ResponseMetadata", None)
        answers.append((operation, answer))

    def key(table: str) -> dict[str, Any]:
        pk = {"S": rng.choice(["p", "q"])}
        if table == "s":
            return {"pk": pk, "sk": {"S": rng.choice(STRINGS[:-3]) + str(rng.randrange(3))}}
        return {"pk": pk, "sk": {"N": rng.choice(NUMBERS)}}

    def value(table: str) -> dict[str, Any]:
        return {"S": rng.choice(STRINGS)} if table == "s" else {"N": rng.choice(NUMBERS)}

    for _ in range(600):
        table = rng.choice(["s", "n"])
        roll = rng.random()
        if roll < 0.45:  # a new item or one rewritten, in a sparse index or not
            item = {**key(table), "v": {"N": str(rng.randrange(100))}}
            if rng.random() < 0.4:
                item["g"] = {"S": rng.choice(["g1", "g2"])}
            call("put_item", TableName=table, Item=item)
        elif roll < 0.55:
            call("delete_item", TableName=table, Key=key(table))
        elif roll < 0.6:
            call("update_item", TableName=table, Key=key(table), UpdateExpression="SET v = :v",
                 ExpressionAttributeValues={":v": {"N": "7"}})  # fmt: skip
        elif roll < 0.7:  # the index, a page and the next
            values = {":g": {"S": rng.choice(["g1", "g2", "g3"])}, ":v": {"N": str(rng.randrange(100))}}
            query = {"TableName": table, "IndexName": "by-g", "ScanIndexForward": rng.random() < 0.5,
                     "KeyConditionExpression": rng.choice(["g = :g", "g = :g AND v > :v"]),
                     "Limit": rng.choice([1, 3, 50])}  # fmt: skip
            query["ExpressionAttributeValues"] = values if ":v" in query["KeyConditionExpression"] else {
                ":g": values[":g"]}  # fmt: skip
            call("query", **query)
            if "LastEvaluatedKey" in answers[-1][1]:
                call("query", **query, ExclusiveStartKey=answers[-1][1]["LastEvaluatedKey"])
        elif roll < 0.74:  # the whole table in pages, from its start or from a key that may not exist
            scan: dict[str, Any] = {"TableName": table, "Limit": rng.choice([1, 4, 30])}
            if rng.random() < 0.3:
                scan["ExclusiveStartKey"] = key(table)
            for _ in range(60):
                call("scan", **scan)
                if "LastEvaluatedKey" not in answers[-1][1]:
                    break
                scan["ExclusiveStartKey"] = answers[-1][1]["LastEvaluatedKey"]
        else:
            values: dict[str, Any] = {":p": {"S": rng.choice(["p", "q", "p", "q", "none"])}}
            condition = "pk = :p"
            form = rng.choice(["", "=", "<", "<=", ">", ">=", "between", "begins"])
            if form == "between":
                values[":a"], values[":b"] = value(table), value(table)
                condition += " AND sk BETWEEN :a AND :b"
            elif form == "begins" and table == "s":
                values[":a"] = {"S": rng.choice(PREFIXES)}
                condition += " AND begins_with(sk, :a)"
            elif form and form != "begins":
                values[":a"] = value(table)
                condition += f" AND sk {form} :a"
            query: dict[str, Any] = {"TableName": table, "KeyConditionExpression": condition,
                                     "ExpressionAttributeValues": values,
                                     "ScanIndexForward": rng.random() < 0.5}  # fmt: skip
            if rng.random() < 0.7:
                query["Limit"] = rng.choice([1, 2, 3, 5, 20])
            if rng.random() < 0.15:
                query["ExclusiveStartKey"] = {**key(table), "pk": values[":p"]}
            if rng.random() < 0.1:
                query["FilterExpression"] = "v > :v"
                query["ExpressionAttributeValues"] = {**values, ":v": {"N": "50"}}
            if rng.random() < 0.1:
                query["Select"] = "COUNT"
            call("query", **query)
    return answers


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_query_of_a_partition_answers_what_moto_answers(
    server: str, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    # GIVEN the same writes and reads sent to the embedded server and to moto's own DynamoDB
    client = boto3.client("dynamodb", endpoint_url=server, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip
    for table in ("s", "n"):
        if table in client.list_tables()["TableNames"]:
            client.delete_table(TableName=table)
    fast = _session(client, seed)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        reference = _session(boto3.client("dynamodb", region_name="us-east-1"), seed)
    # THEN every answer is the same: items, counts, pages, refusals
    queries = [answer for answer in fast if answer[0] == "query" and "Items" in answer[1]]
    assert len(queries) > 150 and sum(1 for q in queries if q[1]["Items"]) > 80  # reads that found items
    assert any("LastEvaluatedKey" in q[1] for q in queries)
    assert sum(1 for answer in fast if answer[0] == "scan" and answer[1].get("Items")) > 30
    for got, expected in zip(fast, reference, strict=True):
        assert got == expected


def _numbers(*texts: str) -> list[DynamoType]:
    return [DynamoType({"N": text}) for text in texts]


def test_a_partition_keeps_its_keys_in_order_as_they_come_and_go() -> None:
    # GIVEN a partition read once (its order built), then keys added out of order and removed
    partition = Partition()
    for key in _numbers("5", "1", "3"):
        partition[key] = key.value
    assert partition.ordered() is not None
    for key in _numbers("4", "0", "10", "3"):  # "3" again: a rewrite, no new key
        partition[key] = f"new {key.value}"
    partition.pop(DynamoType({"N": "5"}))
    del partition[DynamoType({"N": "0"})]
    # THEN the order it keeps is the order its keys sort in, and each key's item is the last put
    order = partition.ordered()
    assert order is not None
    values, keys = order
    assert [str(v) for v in values] == ["1", "3", "4", "10"]
    assert [partition[k] for k in keys] == ["1", "new 3", "new 4", "new 10"]
    # AND keys changed in bulk are ordered again when next read
    partition.update({DynamoType({"N": "2"}): "two"})
    partition.setdefault(DynamoType({"N": "-1"}), "minus one")
    order = partition.ordered()
    assert order is not None and [str(v) for v in order[0]] == ["-1", "1", "2", "3", "4", "10"]


def test_keys_of_equal_values_are_one_key_as_in_dynamodb() -> None:
    # GIVEN "1" put, then "1.0" (one number: a rewrite) and "2"
    partition = Partition()
    partition.ordered()
    one, one_point_zero, two = _numbers("1", "1.0", "2")
    for key in (one, one_point_zero, two):
        partition[key] = key.value
    order = partition.ordered()
    assert order is not None and [str(v) for v in order[0]] == ["1", "2"] and partition[one] == "1.0"
    # WHEN "1.00" goes
    partition.pop(DynamoType({"N": "1.00"}))
    # THEN so has the key "1"
    order = partition.ordered()
    assert order is not None and [k.value for k in order[1]] == ["2"] and list(partition) == [two]


def test_a_sort_key_condition_is_the_slice_of_keys_it_accepts() -> None:
    values = ["A#1", "A#2", "A$", "B#1", "é", "éa", "\U0010ffff", "\U0010ffffa"]
    for comparison, bounds in (
        ("BEGINS_WITH", ["A#"]), ("BEGINS_WITH", ["A"]), ("BEGINS_WITH", ["é"]), ("BEGINS_WITH", ["\U0010ffff"]),
        ("BEGINS_WITH", [""]), ("BEGINS_WITH", ["C"]), ("=", ["A$"]), ("<", ["B#1"]), ("<=", ["B#1"]), (">", ["A$"]),
        (">=", ["A$"]), ("BETWEEN", ["A#2", "é"]), ("BETWEEN", ["é", "A#2"]), (None, []),
    ):  # fmt: skip
        span = key_range(values, comparison, bounds)
        assert span is not None
        accepted = [v for v in values if _accepts(v, comparison, bounds)]
        assert values[span[0] : span[1]] == accepted, (comparison, bounds)
    blobs = [b"a", b"ab", b"b\xff", b"b\xff\x00", b"c"]
    assert key_range(blobs, "BEGINS_WITH", [b"a"]) == (0, 2)
    assert key_range(blobs, "BEGINS_WITH", [b"b\xff"]) == (2, 4)
    # A condition of another type or form is moto's to answer
    assert key_range(values, "<", [1]) is None
    assert key_range(values, "CONTAINS", ["A"]) is None
    assert key_range([1, 2], "BEGINS_WITH", [1]) is None


def _accepts(value: str, comparison: str | None, bounds: list[str]) -> bool:
    if comparison is None:
        return True
    if comparison == "BEGINS_WITH":
        return value.startswith(bounds[0])
    if comparison == "BETWEEN":
        return bounds[0] <= value <= bounds[1]
    return {"=": value == bounds[0], "<": value < bounds[0], "<=": value <= bounds[0], ">": value > bounds[0],
            ">=": value >= bounds[0]}[comparison]  # fmt: skip


def test_a_scan_of_a_table_answers_with_its_items_not_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN moto's table with the embedded AWS's scan and copy in place (undone after the test:
    # other tests of this process compare the embedded AWS with moto's own)
    import moto.dynamodb.models.table as moto_table_module
    from moto.dynamodb.models.table import Table

    from nexus.local import aws_server, partitions

    monkeypatch.setattr(Table, "scan", partitions.scan)
    monkeypatch.setattr(moto_table_module, "copy", aws_server._CopyWhenRead(partitions.SCAN_UNCOPIED))
    table = Table("t", "123456789012", "us-east-1", schema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                  attr=[{"AttributeName": "pk", "AttributeType": "S"}])  # fmt: skip
    for name in ("a", "b", "c"):
        table.put_item({"pk": {"S": name}, "legs": {"L": [{"M": {"n": {"N": "1"}}}]}})
    # WHEN it is scanned in pages
    first, _, after = table.scan({}, 2, None)
    rest, _, _ = table.scan({}, 2, after)
    # THEN each page holds the stored items themselves, in key order, and nothing is copied after
    stored = {str(item.hash_key.value): item for item in table.all_items()}
    assert [str(i.hash_key.value) for i in first + rest] == ["a", "b", "c"]
    assert all(item is stored[str(item.hash_key.value)] for item in first + rest)
    assert not partitions.SCAN_UNCOPIED.get()
