"""The embedded AWS and the garbage collector: full collections skip what survived the last one
(``FrozenHeap``), young ones still reclaim cyclic garbage, and a request leaves no reference
cycle behind. Run against the real collector of this process, which is given back its frozen
objects after each test."""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import Iterator

import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.test import EnvironBuilder

from nexus.local.aws_server import FrozenHeap, _DirectJson


class Node:
    """A cycle of one: only the cycle collector can reclaim it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def heap() -> Iterator[FrozenHeap]:
    gc.collect()
    frozen = FrozenHeap()
    frozen.install()
    try:
        yield frozen
    finally:
        frozen.remove()
        gc.collect()


def test_a_full_collection_scans_only_what_is_new(heap: FrozenHeap) -> None:
    gc.collect()
    made = [Node() for _ in range(100)]
    assert all(gc.is_tracked(node) for node in made)
    gc.collect()
    # frozen: still tracked, but in no generation a collection scans (the freeze count is no
    # measure: it falls whenever frozen objects die, e.g. on another test's server thread)
    tracked = {id(o) for o in gc.get_objects()}
    assert all(gc.is_tracked(node) for node in made)
    assert not any(id(node) in tracked for node in made)
    assert len(gc.get_objects(generation=2)) < len(made)  # what the next full collection scans


def test_cyclic_garbage_made_since_is_still_collected(heap: FrozenHeap) -> None:
    gc.collect()
    cycle = Node()
    dead = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert dead() is None


def test_removed_gives_every_object_back() -> None:
    frozen = FrozenHeap()
    frozen.install()
    frozen.install()
    assert gc.callbacks.count(frozen) == 1
    gc.collect()
    assert gc.get_freeze_count() > 0
    frozen.remove()
    assert frozen not in gc.callbacks
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize(
    ("target", "scope"), [("Kinesis_20131202.ListStreams", "kinesis"), ("DynamoDB_20120810.ListTables", "dynamodb")]
)
def test_an_answered_request_leaves_no_cycle(target: str, scope: str) -> None:
    """Its objects are freed when it is answered: none is left for a collection to find (those of
    a request in flight at a full collection would be frozen, and never collected)."""
    app = _DirectJson(DomainDispatcherApplication(create_backend_app))
    signed = f"AWS4-HMAC-SHA256 Credential=test/20261205/us-east-1/{scope}/aws4_request, SignedHeaders=host"

    def call() -> str:
        environ = EnvironBuilder(path="/", method="POST", data=json.dumps({}), headers={
            "X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1", "Authorization": signed,
        }).get_environ()  # fmt: skip
        status: list[str] = []
        b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
        return status[0]

    assert call() == "200 OK"  # what a first request sets up (a backend) is not counted
    gc.collect()
    gc.disable()
    try:
        assert call() == "200 OK"
        assert gc.collect() == 0
    finally:
        gc.enable()
