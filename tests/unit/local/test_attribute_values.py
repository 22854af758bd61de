"""nexus.local.attribute_values: a DynamoDB resource's values to and from DynamoDB JSON by plans
made once per shape, with boto3's outcome for every value (its own injector is the reference)."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from decimal import Decimal
from enum import StrEnum
from typing import Any

import boto3
import botocore.session
import pytest
from boto3.dynamodb.conditions import Attr, Key
from boto3.dynamodb.transform import TransformationInjector
from boto3.dynamodb.types import Binary
from botocore.client import BaseClient
from botocore.httpsession import URLLib3Session
from botocore.serialize import JSONSerializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.local import attribute_values, transport
from nexus.local.attribute_values import LeanInjector, PlannedTransformer

MODEL = botocore.session.get_session().get_service_model("dynamodb")


class Side(StrEnum):
    BUY = "buy"


class Opaque:
    """Not a DynamoDB type (boto3 refuses it), with the same text after a copy."""

    def __str__(self) -> str:
        return "opaque"


# -- values a caller may pass: the platform's types, and everything boto3 takes or refuses -------

scalars = st.one_of(
    st.text(max_size=8),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=-(10**40), max_value=10**40, places=3),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, width=32),
    st.binary(max_size=4),
    st.binary(max_size=4).map(Binary),
    st.binary(max_size=4).map(bytearray),
    st.just(Side.BUY),
    st.sets(st.text(max_size=4), max_size=3),
    st.sets(st.integers(min_value=-5, max_value=5), max_size=3),
    st.sets(st.binary(max_size=2), max_size=3),
    st.frozensets(st.text(max_size=3), max_size=2),
    st.builds(Opaque),  # not a DynamoDB type: refused
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
        st.dictionaries(st.text(max_size=4), inner, max_size=2).map(OrderedDict),
    ),
    max_leaves=8,
)
items = st.dictionaries(st.sampled_from(["pk", "sk", "a", "b", "c"]), values, max_size=4)


def _condition(name: str, value: Any, key: bool) -> Any:
    return Key(name).eq(value) if key else (Attr(name).eq(value) & Attr("x").not_exists())


@st.composite
def requests(draw: Any) -> tuple[str, dict[str, Any]]:
    """An operation and the parameters a resource's caller gives it."""
    operation = draw(st.sampled_from(["PutItem", "UpdateItem", "Query", "BatchWriteItem", "BatchGetItem",
                                      "TransactWriteItems", "GetItem", "DeleteItem", "Scan"]))  # fmt: skip
    if operation == "PutItem":
        params: dict[str, Any] = {"TableName": "t", "Item": draw(items), "ReturnValues": "ALL_OLD"}
        if draw(st.booleans()):
            params["ConditionExpression"] = _condition("a", draw(values), key=False)
    elif operation == "UpdateItem":
        params = {"TableName": "t", "Key": draw(items), "UpdateExpression": "SET a = :a",
                  "ExpressionAttributeValues": {":a": draw(values), ":b": draw(values)},
                  "ExpressionAttributeNames": {"#a": "a"}}  # fmt: skip
        if draw(st.booleans()):
            params["ConditionExpression"] = _condition("b", draw(values), key=False)
    elif operation == "Query":
        params = {"TableName": "t", "KeyConditionExpression": _condition("pk", draw(values), key=True),
                  "ExclusiveStartKey": draw(items), "Limit": 3}  # fmt: skip
        if draw(st.booleans()):
            params["FilterExpression"] = _condition("c", draw(values), key=False)
    elif operation == "Scan":
        params = {"TableName": "t", "ScanFilter": {"a": {"AttributeValueList": [draw(values)],
                                                         "ComparisonOperator": "EQ"}}}  # fmt: skip
    elif operation == "BatchWriteItem":
        params = {"RequestItems": {"t": [{"PutRequest": {"Item": draw(items)}},
                                         {"DeleteRequest": {"Key": draw(items)}}]}}  # fmt: skip
    elif operation == "BatchGetItem":
        params = {"RequestItems": {"t": {"Keys": draw(st.lists(items, max_size=3)), "ProjectionExpression": "a"}}}
    elif operation == "TransactWriteItems":
        check = {"TableName": "t", "Key": draw(items), "ConditionExpression": "attribute_exists(pk)",
                 "ExpressionAttributeValues": {":v": draw(values)}}  # fmt: skip
        params = {"TransactItems": [{"Put": {"TableName": "t", "Item": draw(items)}}, {"ConditionCheck": check}]}
    else:
        params = {"TableName": "t", "Key": draw(items)}
    return operation, params


def _outcome(injector: Any, operation: str, params: dict[str, Any]) -> Any:
    """The parameters as the injector leaves them, or the error it raises (type and text)."""
    model = MODEL.operation_model(operation)
    mine = copy.deepcopy(params)
    try:
        injector.inject_condition_expressions(mine, model)
        injector.inject_attribute_value_input(mine, model)
    except Exception as exc:  # noqa: BLE001 - the error itself is what is compared
        return ("raised", type(exc), str(exc))
    return ("params", _typed(mine))


def _typed(value: Any) -> Any:
    """``value`` with every member's type kept, so that ``==`` tells ``1`` from ``True`` or a set
    from a list, and numbers by their text."""
    if isinstance(value, dict):
        return (type(value), {k: _typed(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return (type(value), [_typed(v) for v in value])
    if isinstance(value, Decimal):
        return (Decimal, str(value))  # NaN is not equal to itself
    return (type(value), value)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_parameters_are_serialized_as_boto3_serializes_them(request: tuple[str, dict[str, Any]]) -> None:
    operation, params = request
    assert _outcome(LeanInjector(), operation, params) == _outcome(TransformationInjector(), operation, params)


# -- answers: attribute values as a server sends them, well formed or not -------------------------

leaf_values = st.one_of(
    st.text(max_size=6).map(lambda s: {"S": s}),
    st.sampled_from(["0", "-1.5", "1E+3", "123456789012345678901234567890123456789", "x", "NaN"]).map(
        lambda n: {"N": n}
    ),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.binary(max_size=3).map(lambda b: {"B": b}),
    st.lists(st.text(max_size=3), max_size=3).map(lambda ss: {"SS": ss}),
    st.lists(st.sampled_from(["1", "2.5", "-3"]), max_size=3).map(lambda ns: {"NS": ns}),
    st.lists(st.binary(max_size=2), max_size=2).map(lambda bs: {"BS": bs}),
    st.just({}),  # malformed: refused
    st.just({"Q": "1"}),  # an unknown type: refused
    st.just({"S": "a", "N": "1"}),  # two types: the first is read
)
attribute_values_tree = st.recursive(
    leaf_values,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda members: {"L": members}),
        st.dictionaries(st.text(max_size=3), inner, max_size=3).map(lambda members: {"M": members}),
    ),
    max_leaves=8,
)
answer_items = st.dictionaries(st.sampled_from(["pk", "a", "b"]), attribute_values_tree, max_size=3)


@st.composite
def answers(draw: Any) -> tuple[str, dict[str, Any]]:
    operation = draw(st.sampled_from(["GetItem", "Query", "BatchGetItem", "UpdateItem", "PutItem"]))
    if operation == "GetItem":
        parsed: dict[str, Any] = {"Item": draw(answer_items)}
    elif operation == "Query":
        parsed = {"Items": draw(st.lists(answer_items, max_size=3)), "Count": 1,
                  "LastEvaluatedKey": draw(answer_items)}  # fmt: skip
    elif operation == "BatchGetItem":
        parsed = {"Responses": {"t": draw(st.lists(answer_items, max_size=3))},
                  "UnprocessedKeys": {"t": {"Keys": draw(st.lists(answer_items, max_size=2))}}}  # fmt: skip
    else:
        parsed = {"Attributes": draw(answer_items)}
    return operation, parsed


def _answer(injector: Any, operation: str, parsed: dict[str, Any]) -> Any:
    mine = copy.deepcopy(parsed)
    try:
        injector.inject_attribute_value_output(mine, MODEL.operation_model(operation))
    except Exception as exc:  # noqa: BLE001 - the error itself is what is compared
        return ("raised", type(exc), str(exc))
    return ("parsed", _typed(mine))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers())
def test_answers_are_read_as_boto3_reads_them(answer: tuple[str, dict[str, Any]]) -> None:
    operation, parsed = answer
    assert _answer(LeanInjector(), operation, parsed) == _answer(TransformationInjector(), operation, parsed)


# -- the plans ------------------------------------------------------------------------------------


def test_a_plan_visits_only_members_that_can_hold_the_target() -> None:
    seen: list[Any] = []
    params = {"TableName": "t", "Item": {"a": "1"}, "ReturnValues": "ALL_OLD", "ConditionExpression": "x",
              "ExpressionAttributeNames": {"#a": "a"}, "ExpressionAttributeValues": {":v": 2}}  # fmt: skip
    PlannedTransformer().transform(params, MODEL.operation_model("PutItem").input_shape,
                                   lambda value: seen.append(value) or value, "AttributeValue")  # fmt: skip
    assert seen == ["1", 2]  # the item's value and the placeholder's, nothing else


def test_a_value_that_is_not_what_its_shape_says_is_left_alone() -> None:
    """boto3 visits a structure or map only if it is a mapping, a list only if it is a mutable
    sequence: anything else is left for the request's own validation to refuse."""
    params: dict[str, Any] = {"RequestItems": {"t": "not a list"}, "Other": {"a": 1}}
    reference = copy.deepcopy(params)
    PlannedTransformer().transform(params, MODEL.operation_model("BatchWriteItem").input_shape,
                                   attribute_values.serialize, "AttributeValue")  # fmt: skip
    assert params == reference


def test_threads_making_the_same_plan_at_once_all_serialize_every_value() -> None:
    """A resource is shared by a consumer's threads: a plan is used only once it is whole."""
    transformer = PlannedTransformer()
    model = MODEL.operation_model("TransactWriteItems").input_shape
    start = threading.Barrier(8)
    results: list[Any] = []

    def one() -> None:
        params = {"TransactItems": [{"Put": {"TableName": "t", "Item": {"a": Decimal("1.5"), "m": {"l": [True]}}}}]}
        start.wait()
        transformer.transform(params, model, attribute_values.serialize, "AttributeValue")
        results.append(params)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = {"a": {"N": "1.5"}, "m": {"M": {"l": {"L": [{"BOOL": True}]}}}}
    assert [r["TransactItems"][0]["Put"]["Item"] for r in results] == [expected] * 8


def test_numbers_keep_boto3s_limits() -> None:
    assert attribute_values.serialize(Decimal("187.25")) == {"N": "187.25"}
    assert attribute_values.serialize(10**30) == {"N": str(10**30)}
    with pytest.raises(TypeError, match="Float types are not supported"):
        attribute_values.serialize(1.5)
    with pytest.raises(Exception, match=r"Inexact|Rounded"):
        attribute_values.serialize(Decimal("1." + "1" * 40))
    assert attribute_values.deserialize({"N": "0.10"}) == Decimal("0.10")


def test_resources_made_after_install_use_the_lean_injector(monkeypatch: pytest.MonkeyPatch) -> None:
    for owner, name in ((URLLib3Session, "send"), (BaseClient, "_resolve_endpoint_ruleset"),
                        (JSONSerializer, "_serialize"), (boto3.dynamodb.transform, "copy_dynamodb_params"),
                        (boto3.dynamodb.transform, "TransformationInjector")):  # fmt: skip
        monkeypatch.setattr(owner, name, getattr(owner, name))  # undone after the test
    monkeypatch.setattr(transport, "_endpoints", ())
    kwargs = {"region_name": "us-east-1", "aws_access_key_id": "a", "aws_secret_access_key": "b"}
    before = boto3.resource("dynamodb", endpoint_url="http://127.0.0.1:9", **kwargs)
    assert type(_injector_of(before)) is TransformationInjector
    assert transport.install("http://127.0.0.1:9")
    after = boto3.resource("dynamodb", endpoint_url="http://127.0.0.1:9", **kwargs)
    assert type(_injector_of(after)) is LeanInjector


def _injector_of(resource: Any) -> Any:
    return resource._injector
