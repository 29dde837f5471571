"""The token bucket behind the flood throttle, and the rule that pauses buying after cancels."""

from __future__ import annotations

from handlers.throttling import PRUNE_EVERY, MemoryThrottleStore, Verdict
from shop.services.orders import CANCEL_WINDOW_SECONDS, pause_end


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _hits(store: MemoryThrottleStore, key: int, n: int, rate: float, burst: int) -> list:
    return [await store.hit(key, rate, burst) for _ in range(n)]


async def test_a_burst_passes_then_one_warning_then_drops() -> None:
    store = MemoryThrottleStore(Clock())
    verdicts = await _hits(store, 7, 12, rate=2.0, burst=8)
    assert verdicts == [Verdict.ALLOW] * 8 + [Verdict.WARN] + [Verdict.DROP] * 3


async def test_a_full_bucket_ends_the_throttled_period() -> None:
    clock = Clock()
    store = MemoryThrottleStore(clock)
    await _hits(store, 7, 3, rate=2.0, burst=2)  # allow, allow, warn
    clock.now += 0.25  # half a token: still throttled, already warned
    assert await store.hit(7, 2.0, 2) is Verdict.DROP
    clock.now += 0.25  # one token: allowed, but the period goes on
    assert await _hits(store, 7, 2, rate=2.0, burst=2) == [Verdict.ALLOW, Verdict.DROP]
    clock.now += 1.0  # idle until full: calmed down
    # A new throttled period gets its own (single) warning.
    assert await _hits(store, 7, 4, rate=2.0, burst=2) == [
        Verdict.ALLOW,
        Verdict.ALLOW,
        Verdict.WARN,
        Verdict.DROP,
    ]


async def test_a_sustained_flood_gets_one_warning() -> None:
    clock = Clock()
    store = MemoryThrottleStore(clock)
    verdicts = []
    for _ in range(100):  # ten per second for ten seconds, against two per second
        verdicts.append(await store.hit(7, 2.0, 8))
        clock.now += 0.1
    assert verdicts.count(Verdict.WARN) == 1
    assert verdicts.count(Verdict.ALLOW) in (27, 28)  # the burst of 8 + 2/s for ~10 s


async def test_sustained_rate_is_allowed() -> None:
    clock = Clock()
    store = MemoryThrottleStore(clock)
    for _ in range(100):
        assert await store.hit(7, 2.0, 1) is Verdict.ALLOW
        clock.now += 0.5


async def test_refill_is_capped_at_the_burst() -> None:
    clock = Clock()
    store = MemoryThrottleStore(clock)
    await store.hit(7, 2.0, 3)
    clock.now += 3600  # a long pause does not bank thousands of tokens
    verdicts = await _hits(store, 7, 4, rate=2.0, burst=3)
    assert verdicts == [Verdict.ALLOW] * 3 + [Verdict.WARN]


async def test_users_have_separate_buckets() -> None:
    store = MemoryThrottleStore(Clock())
    await _hits(store, 1, 10, rate=1.0, burst=2)
    assert await store.hit(2, 1.0, 2) is Verdict.ALLOW


async def test_idle_buckets_are_pruned() -> None:
    clock = Clock()
    store = MemoryThrottleStore(clock)
    for key in range(PRUNE_EVERY - 1):
        await store.hit(key, 1.0, 2)
    assert len(store) == PRUNE_EVERY - 1
    clock.now += 2.0  # every bucket is full again
    await store.hit(-1, 1.0, 2)  # the PRUNE_EVERY-th hit sweeps
    assert len(store) == 1


def test_pause_needs_the_limit_within_the_window() -> None:
    t = 1_700_000_000
    assert pause_end([t, t - 10, t - 20], limit=3, pause=600) == t + 600
    assert pause_end([t, t - 10], limit=3, pause=600) is None
    spread = [t, t - 10, t - CANCEL_WINDOW_SECONDS - 1]
    assert pause_end(spread, limit=3, pause=600) is None
    edge = [t, t - 10, t - CANCEL_WINDOW_SECONDS]
    assert pause_end(edge, limit=3, pause=600) == t + 600


def test_pause_zero_limit_is_off() -> None:
    assert pause_end([1, 2, 3], limit=0, pause=600) is None


def test_after_a_pause_one_more_cancel_does_not_pause_again() -> None:
    # Three cancels within the hour paused buying for an hour after the last one; a single
    # cancel after the pause is spread over more than the window with the two before it.
    t = 1_700_000_000
    later = t + 3600 + 5
    assert pause_end([later, t, t - 10], limit=3, pause=3600) is None
