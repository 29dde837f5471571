"""The shop's Prometheus metrics, and the small functions the rest of the code counts with.

They live in prometheus_client's default registry, beside its process and platform collectors;
`/metrics` on the HTTP listener exposes it (`web.server`). Every label takes few values (update
types, outcomes, route keys, provider names, job names, HTTP statuses), never ids or users.
Counters only go up for the life of the process: read them as rates.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

UPDATES = Counter(
    "numbot_updates_total",
    "Telegram updates handled, by update type and outcome "
    "(handled, unhandled, refused: an expected error shown to the user, error: unexpected, "
    "cancelled: cut off by a shutdown)",
    ["type", "outcome"],
)
UPDATE_SECONDS = Histogram(
    "numbot_update_seconds",
    "Time spent handling one Telegram update",
    ["type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOK_REQUESTS = Counter(
    "numbot_webhook_requests_total",
    "Requests to the Telegram webhook path, by the HTTP status answered",
    ["status"],
)
ORDERS = Counter(
    "numbot_orders_total",
    "Orders that reached a final state, by route and outcome "
    "(completed, expired, cancelled, failed)",
    ["route", "outcome"],
)
REFUNDS = Counter(
    "numbot_refunds_total",
    "Order refunds written to the ledger, by route and reason "
    "(failed, expired, cancelled, admin)",
    ["route", "reason"],
)
JOB_LAG = Histogram(
    "numbot_job_lag_seconds",
    "How late a job started after it was due (periodic jobs by id; order polls and deadlines)",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
UPSTREAM_REQUESTS = Counter(
    "numbot_upstream_requests_total",
    "Requests to upstream providers, by provider and HTTP status ('error': no answer)",
    ["provider", "status"],
)
UPSTREAM_SECONDS = Histogram(
    "numbot_upstream_request_seconds",
    "Upstream request latency, by provider",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30),
)
UPSTREAM_THROTTLED = Counter(
    "numbot_upstream_429_total",
    "HTTP 429 (Too Many Requests) answers from upstream providers",
    ["provider"],
)
LEASES_CLAIMED = Counter(
    "numbot_leases_claimed_total",
    "Leases this instance took over because nobody held them (their instance died or "
    "stopped), by kind (order, sms)",
    ["kind"],
)
LEASES_LOST = Counter(
    "numbot_leases_lost_total",
    "Leases this instance held and found taken by another instance (or the order closed "
    "elsewhere) at a renewal, by kind (order, sms)",
    ["kind"],
)
JOB_LEASES_TAKEN = Counter(
    "numbot_job_leases_taken_total",
    "Singleton jobs this instance took the lease of (at its start, or from an instance "
    "that died or stopped), by job",
    ["job"],
)


def leases_claimed(kind: str, count: int) -> None:
    LEASES_CLAIMED.labels(kind).inc(count)


def leases_lost(kind: str, count: int) -> None:
    LEASES_LOST.labels(kind).inc(count)


def job_lease_taken(job: str) -> None:
    JOB_LEASES_TAKEN.labels(job).inc()


def update_handled(kind: str, outcome: str, seconds: float) -> None:
    """One Telegram update went through the Dispatcher."""
    UPDATES.labels(kind, outcome).inc()
    UPDATE_SECONDS.labels(kind).observe(seconds)


def webhook_answered(status: int) -> None:
    WEBHOOK_REQUESTS.labels(str(status)).inc()


def order_settled(route: str, outcome: str) -> None:
    """An order reached a final state (completed, expired, cancelled, failed)."""
    ORDERS.labels(route, outcome).inc()


def order_refunded(route: str, reason: str) -> None:
    """A refund row was written for an order (the schema allows one per order)."""
    REFUNDS.labels(route, reason).inc()


def job_started(job: str, lag_seconds: float) -> None:
    JOB_LAG.labels(job).observe(max(lag_seconds, 0.0))


def upstream_request(provider: str, status: int | None, seconds: float) -> None:
    """The hook for the providers' shared HTTP layer: call it once per upstream request with
    the provider's name, the HTTP status (None when no answer came: a timeout, a refused
    connection) and the time the request took."""
    UPSTREAM_REQUESTS.labels(provider, "error" if status is None else str(status)).inc()
    UPSTREAM_SECONDS.labels(provider).observe(seconds)
    if status == 429:
        UPSTREAM_THROTTLED.labels(provider).inc()


class LiveOrders(Collector):
    """`numbot_live_orders{route}`: the live orders this instance holds the lease on and
    watches, read at scrape time from each running app's jobs (a gauge that is never out of
    step with them)."""

    def __init__(self) -> None:
        self._sources: list[Callable[[], Mapping[str, int]]] = []
        self._lock = threading.Lock()  # scrapes may come from another thread

    def track(self, source: Callable[[], Mapping[str, int]]) -> Callable[[], None]:
        """Count `source()` (route -> live orders) from now on; returns the undo."""
        with self._lock:
            self._sources.append(source)

        def untrack() -> None:
            with self._lock:
                if source in self._sources:
                    self._sources.remove(source)

        return untrack

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "numbot_live_orders",
            "Live orders held (leased) and watched by this instance, by route",
            labels=["route"],
        )
        with self._lock:
            sources = list(self._sources)
        totals: Tally[str] = Tally()
        for source in sources:
            totals.update(source())
        for route, count in sorted(totals.items()):
            family.add_metric([route], count)
        yield family


LIVE_ORDERS = LiveOrders()
REGISTRY.register(LIVE_ORDERS)
