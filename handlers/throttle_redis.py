"""The flood throttle's buckets in Redis (`REDIS_URL`), shared by every instance, so a user
cannot spread a flood over them. The same token bucket as `MemoryThrottleStore`, taken and
refilled atomically by a Lua script; an idle bucket expires once it would be full again (a
new bucket is the same thing)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from handlers.throttling import Verdict

log = logging.getLogger(__name__)

# KEYS[1]: the user's bucket (a hash: tokens, stamp, warned); ARGV: rate per second, burst,
# and the time in seconds ("" for Redis's own clock, which every instance shares).
# Returns 0 allow, 1 warn (the first refusal of a throttled period), 2 drop.
_HIT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now == nil then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp', 'warned')
local tokens = tonumber(state[1])
local warned = state[3] == '1'
if tokens == nil then
    tokens = burst
    warned = false
else
    tokens = math.min(burst, tokens + math.max(0, now - tonumber(state[2])) * rate)
    if tokens >= burst then
        warned = false
    end
end
local verdict = 0
if tokens >= 1 then
    tokens = tokens - 1
elseif warned then
    verdict = 2
else
    warned = true
    verdict = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),
    'stamp', string.format('%.6f', now), 'warned', warned and '1' or '0')
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1)
return verdict
"""

_VERDICTS = (Verdict.ALLOW, Verdict.WARN, Verdict.DROP)


class RedisThrottleStore:
    """Token buckets in Redis, one hash per user under `{prefix}:throttle:`.

    If Redis cannot be reached the update is let through (logged): the throttle protects the
    shop and must not be what stops it. `clock` is for tests; by default the time is Redis's.
    """

    def __init__(
        self, redis: Redis, prefix: str, clock: Callable[[], float] | None = None
    ) -> None:
        self._hit = redis.register_script(_HIT)
        self._prefix = f"{prefix}:throttle:"
        self._clock = clock

    async def hit(self, key: int, rate: float, burst: int) -> Verdict:
        now = "" if self._clock is None else repr(self._clock())
        try:
            verdict = await self._hit(keys=[f"{self._prefix}{key}"], args=[rate, burst, now])
        except (RedisError, OSError) as exc:
            log.warning("Throttle store unreachable, update of %s let through: %s", key, exc)
            return Verdict.ALLOW
        return _VERDICTS[int(verdict)]
