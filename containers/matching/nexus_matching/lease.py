"""Leadership of an engine shard: a Redis lease with a fencing token (the epoch).

One engine process at a time holds ``{prefix}:leader`` (value ``"{epoch}:{node}"``, with a TTL).
Taking the lease increments ``{prefix}:epoch``, so every leader has a larger epoch than the one
before it. The leader renews the lease well before it expires; a standby tries to take it and
succeeds once the leader is gone (dead, or paused past the TTL). Every write a leader makes
under the lease (its snapshot) is a compare-and-set on the lease value in one Lua script, so a
paused leader that wakes up cannot overwrite its successor's state; the events it might still
publish carry its old epoch, and consumers ignore events older than what they have seen.

Epochs never go back, even when Redis loses its data (a restart without persistence): each
process remembers the largest epoch it has seen (its own, and the counter a refused acquisition
reports), and taking the lease sets the counter above that floor. A successor's events then
still outrank its predecessor's at the consumers. (Were Redis wiped while no engine process
lived, the floor would be lost too: run Redis with persistence or a replica in production.)
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

import redis

_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -tonumber(redis.call('GET', KEYS[2]) or '0')
end
local epoch = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if epoch <= floor then
  epoch = floor + 1
  redis.call('SET', KEYS[2], epoch)
end
redis.call('SET', KEYS[1], epoch .. ':' .. ARGV[1], 'PX', ARGV[2])
return epoch
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_SET_IF_LEADER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


@dataclass
class Lease:
    client: redis.Redis
    prefix: str
    ttl_ms: int
    node: str = field(default_factory=lambda: f"{os.getpid()}@{socket.gethostname()}")
    epoch: int = 0
    seen_epoch: int = 0  # the largest epoch this process knows of: the floor of its next one

    def __post_init__(self) -> None:
        self._acquire: Any = self.client.register_script(_ACQUIRE)
        self._renew: Any = self.client.register_script(_RENEW)
        self._release: Any = self.client.register_script(_RELEASE)
        self._set_if_leader: Any = self.client.register_script(_SET_IF_LEADER)

    @property
    def leader_key(self) -> str:
        return f"{self.prefix}:leader"

    @property
    def epoch_key(self) -> str:
        return f"{self.prefix}:epoch"

    @property
    def token(self) -> str:
        return f"{self.epoch}:{self.node}"

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; on success ``epoch`` is the new fencing token,
        above every epoch this process has seen."""
        answer = int(
            self._acquire(keys=[self.leader_key, self.epoch_key], args=[self.node, self.ttl_ms, self.seen_epoch])
        )
        if answer > 0:
            self.epoch = self.seen_epoch = answer
            return True
        self.seen_epoch = max(self.seen_epoch, -answer)  # the counter, as the holder took it
        return False

    def renew(self) -> bool:
        """Extend the lease; False when it is no longer ours (expired and taken, or lost)."""
        return self.renew_epoch(self.epoch)

    def renew_epoch(self, epoch: int) -> bool:
        """Extend the lease taken with ``epoch`` (safe from another thread than the holder's)."""
        token = f"{epoch}:{self.node}"
        return bool(epoch) and bool(self._renew(keys=[self.leader_key], args=[token, self.ttl_ms]))

    def holds(self) -> bool:
        return bool(self.epoch) and self.current_leader() == self.token

    def release(self) -> None:
        if self.epoch:
            self._release(keys=[self.leader_key], args=[self.token])
        self.epoch = 0

    def set_if_leader(self, key: str, value: str) -> bool:
        """Write ``key`` only while holding the lease (atomically)."""
        return bool(self._set_if_leader(keys=[self.leader_key, key], args=[self.token, value]))

    def current_leader(self) -> str | None:
        value = self.client.get(self.leader_key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)
