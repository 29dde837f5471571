"""Reconciliation with the upstreams: what each account cost us against what customers paid,
and its balance between hourly snapshots against what our orders explain."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from shop.models import ReconOrder, RentalTotals, Snapshot
from shop.ports import ReconRepository
from shop.providers.base import ProviderError, Route
from shop.services.stats import (
    DAY,
    RentalFigures,
    account_title,
    accounts,
    upstream_balance,
)

log = logging.getLogger(__name__)

SNAPSHOT_KEEP_DAYS = 400


@dataclass(frozen=True)
class BalanceChange:
    """An upstream balance between two snapshots, against what our orders explain."""

    start: Snapshot
    end: Snapshot
    expected: Decimal  # the change our orders explain (negative: spent), upstream currency

    @property
    def actual(self) -> Decimal:
        return self.end.amount - self.start.amount

    @property
    def unexplained(self) -> Decimal:
        """Negative: the balance fell more than our orders explain (a leak to look into).
        Positive: it rose more (usually a deposit the owner made upstream)."""
        return self.actual - self.expected


@dataclass(frozen=True)
class Reconciliation:
    """One upstream account over a period.

    Orders are counted by the time they were created. An order costs us upstream once it got a
    number, unless it was cancelled or expired without a code and the cancel went through
    (the upstream then gives the money back). Orders that got a code, orders still waiting for
    one (until they end) and orders flagged for attention (a cancel that failed) count as paid
    upstream. A purchase whose outcome is unknown got no number here: it is only flagged.
    """

    account: str
    title: str
    currency: str  # the upstream's
    numbers: int  # orders that got a number
    with_code: int
    returned: int  # cancelled or expired without a code: refunded by the upstream
    waiting: int  # still waiting for a code (paid upstream until they end)
    flagged: int  # needs attention: a cancel that failed, or a purchase with unknown outcome
    paid_upstream: int  # shop minor units
    paid_upstream_raw: Decimal  # upstream currency
    charged: int  # what customers were charged
    refunded: int  # and what was given back to them
    balance: BalanceChange | None

    @property
    def customer_net(self) -> int:
        return self.charged - self.refunded

    @property
    def margin(self) -> int:
        return self.customer_net - self.paid_upstream


def _returned_upstream(order: ReconOrder) -> bool:
    """The upstream gave the money back: no code, cancelled or expired, and no failed cancel."""
    return (
        order.has_number
        and not order.has_code
        and order.status in ("cancelled", "expired")
        and not order.needs_attention
    )


class ReconcileService:
    def __init__(
        self,
        repo: ReconRepository,
        routes: Mapping[str, Route],
        rentals: RentalFigures | None = None,
    ) -> None:
        self._repo = repo
        self._routes = routes
        self._rentals = rentals

    async def rentals(self, days: int) -> RentalTotals | None:
        """SMSPool rentals bought in the last `days` days: what customers paid net, what
        SMSPool was paid, the margin; None when rentals are not sold."""
        if self._rentals is None:
            return None
        return await self._rentals.totals(int(time.time()) - days * DAY)

    async def snapshot_balances(self) -> None:
        """The balance-snapshot job: each upstream account's balance, kept for /reconcile."""
        now = int(time.time())
        for account, route in accounts(self._routes).items():
            if route.is_sandbox:
                continue
            try:
                amount = await upstream_balance(route)
            except (ProviderError, TimeoutError) as exc:
                log.info("Balance snapshot of %s skipped: %s", account, type(exc).__name__)
                continue
            await self._repo.add_snapshot(account, route.currency, amount, now)
        await self._repo.prune_snapshots(now - SNAPSHOT_KEEP_DAYS * DAY)

    async def reconcile(self, days: int) -> list[Reconciliation]:
        """Per upstream account over the last `days` days: what we paid upstream, what customers
        paid us, the margin, and the balance change between snapshots against what our orders
        explain (see `Reconciliation` for which orders cost us money)."""
        since = int(time.time()) - days * DAY
        routes_of: dict[str, list[Route]] = {}
        for route in self._routes.values():
            routes_of.setdefault(route.account, []).append(route)
        results = []
        for account, routes in routes_of.items():
            keys = [r.key for r in routes]
            window = await self._repo.snapshot_window(account, since)
            start = since if window is None else min(since, window[0].taken_at)
            orders = await self._repo.recon_orders(keys, start)
            results.append(_reconcile(account, routes[0], orders, since, window))
        return results


def _reconcile(
    account: str,
    route: Route,
    orders: list[ReconOrder],
    since: int,
    window: tuple[Snapshot, Snapshot] | None,
) -> Reconciliation:
    period = [o for o in orders if o.created_at >= since]
    kept = [o for o in period if o.has_number and not _returned_upstream(o)]
    balance = None
    if window is not None:
        start, end = window
        spent = sum(
            (
                o.upstream_cost
                for o in orders
                if o.has_number and start.taken_at < o.created_at <= end.taken_at
            ),
            Decimal(0),
        )
        given_back = sum(
            (
                o.upstream_cost
                for o in orders
                if _returned_upstream(o)
                and o.finished_at is not None
                and start.taken_at < o.finished_at <= end.taken_at
            ),
            Decimal(0),
        )
        balance = BalanceChange(start, end, given_back - spent)
    return Reconciliation(
        account=account,
        title=account_title(route),
        currency=route.currency,
        numbers=sum(1 for o in period if o.has_number),
        with_code=sum(1 for o in period if o.has_code),
        returned=sum(1 for o in period if _returned_upstream(o)),
        waiting=sum(1 for o in period if o.status == "number_issued"),
        flagged=sum(1 for o in period if o.needs_attention),
        paid_upstream=sum(o.cost for o in kept),
        paid_upstream_raw=sum((o.upstream_cost for o in kept), Decimal(0)),
        charged=sum(o.price for o in period if o.charged),
        refunded=sum(o.price for o in period if o.refunded),
        balance=balance,
    )
