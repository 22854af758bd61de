"""The leader lease against a real redis-server: epochs never go back, even when Redis loses
its data while the engine processes live."""

from __future__ import annotations

import redis
from marketdata_redis import redis_db, redis_url  # noqa: F401 - fixtures
from nexus_matching.lease import Lease


def test_epochs_stay_above_every_epoch_seen_when_redis_comes_back_empty(redis_db: redis.Redis) -> None:  # noqa: F811
    # GIVEN a leader that took epochs 1..3 and a standby refused while epoch 3 led
    leader = Lease(redis_db, "nexus:engine:test", 3000, node="a")
    standby = Lease(redis_db, "nexus:engine:test", 3000, node="b")
    for _ in range(3):
        assert leader.try_acquire()
        leader.release()
    assert leader.try_acquire() and leader.epoch == 4
    assert not standby.try_acquire() and standby.seen_epoch == 4
    # WHEN Redis loses everything (a restart without persistence)
    redis_db.flushall()
    # THEN whichever takes the lease next takes an epoch above every epoch seen, not 1
    assert standby.try_acquire() and standby.epoch == 5
    standby.release()
    leader.epoch = 0
    assert leader.try_acquire() and leader.epoch == 6
    assert int(redis_db.get("nexus:engine:test:epoch") or 0) == 6


def test_a_refused_acquisition_changes_nothing(redis_db: redis.Redis) -> None:  # noqa: F811
    # GIVEN a holder, WHEN another process tries to take the lease
    holder = Lease(redis_db, "nexus:engine:t2", 3000, node="a")
    other = Lease(redis_db, "nexus:engine:t2", 3000, node="b")
    assert holder.try_acquire()
    assert not other.try_acquire()
    # THEN the holder still holds it, with the same epoch, and the other holds nothing
    assert holder.holds() and holder.renew() and other.epoch == 0
    assert redis_db.get("nexus:engine:t2:leader") == b"1:a"
