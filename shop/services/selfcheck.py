"""The scheduled self-check: every balance against its ledger sum, every order's ledger rows
against its state. One query each (about 0.1 s for 100,000 orders, on the reader connection),
so it runs every SELF_CHECK_SECONDS. Findings go to the admins, throttled like other alerts;
the time of the last pass is kept in the kv table for /stats."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shop.i18n import LazyText, lazy
from shop.models import OrderLedger, OrderStatus
from shop.money import Currency
from shop.ports import KeyValueRepository, LedgerRepository, SelfCheckRepository
from shop.services.notify import Notifier
from shop.services.orders import ALERT_EVERY_SECONDS

log = logging.getLogger(__name__)

PASSED_KEY = "selfcheck:passed"  # Unix time of the last run that found nothing
RESULT_KEY = "selfcheck:result"  # "<time> <balance mismatches> <order mismatches>" of the last
RUNS_KEY = "selfcheck:runs"  # how many runs so far
ALERT_ITEMS = 20  # ids listed in one alert; the count says how many there are
CLOSED_WITHOUT_CODE = frozenset({OrderStatus.FAILED, OrderStatus.EXPIRED, OrderStatus.CANCELLED})


@dataclass(frozen=True)
class SelfCheckStatus:
    """What /stats shows: the last run and the last pass (Unix times; None: never)."""

    last_run: int | None
    balances: int  # mismatches found by the last run
    orders: int
    last_pass: int | None

    @property
    def passed(self) -> bool:
        return self.last_run is not None and self.balances == 0 and self.orders == 0


class Joined:
    """Parts shown joined by "; ", each rendered when shown (a `LazyText` part in the
    reader's language), so a list can be a parameter of a lazy alert."""

    def __init__(self, parts: Sequence[object], more: int = 0) -> None:
        self.parts = list(parts)
        self.more = more

    def __str__(self) -> str:
        text = "; ".join(str(part) for part in self.parts)
        if self.more:
            text += " " + str(lazy("and {count} more", count=self.more))
        return text


def order_problems(row: OrderLedger) -> list[LazyText]:
    """Why an order's ledger rows do not match its state (pure)."""
    problems = []
    if row.paid is None:
        problems.append(lazy("no purchase row"))
    elif row.paid != -row.price or row.payer != row.user_id:
        problems.append(lazy("the purchase row is not its price from its customer"))
    if row.refunded is None:
        if row.status in CLOSED_WITHOUT_CODE and not row.has_code:
            problems.append(lazy("closed without a code and never refunded"))
    else:
        if row.has_code or row.status in (OrderStatus.CODE_RECEIVED, OrderStatus.COMPLETED):
            problems.append(lazy("refunded although it got a code"))
        elif row.status.is_live:
            problems.append(lazy("refunded while still live"))
        if row.refunded != row.price or row.payee != row.user_id:
            problems.append(lazy("the refund is not its price to its customer"))
    return problems


def _digest(ids: Iterable[object]) -> str:
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


class SelfCheckService:
    def __init__(
        self,
        ledger: LedgerRepository,
        repo: SelfCheckRepository,
        kv: KeyValueRepository,
        notifier: Notifier,
        currency: Currency,
    ) -> None:
        self.ledger = ledger
        self.repo = repo
        self.kv = kv
        self.notifier = notifier
        self.currency = currency

    async def run(self) -> bool:
        """One check; True if everything matched. Alerts the admins about any mismatch (the
        same findings at most once per ALERT_EVERY_SECONDS)."""
        balances = await self.ledger.mismatches()
        orders = await self.repo.order_mismatches()
        now = int(time.time())
        if balances:
            log.error("Self-check: balances differ from their ledger: %s", balances)
            items = [
                lazy(
                    "user {user}: balance {balance}, ledger {ledger}",
                    user=user,
                    balance=self.currency.format(balance),
                    ledger=self.currency.format(total),
                )
                for user, balance, total in balances
            ]
            await self._alert(
                "balances",
                [user for user, _, _ in balances],
                lazy(
                    "Self-check: {count} balance(s) differ from their ledger sum: {items}",
                    count=len(balances),
                    items=Joined(items[:ALERT_ITEMS], max(0, len(items) - ALERT_ITEMS)),
                ),
            )
        if orders:
            log.error("Self-check: orders whose ledger does not match: %s", orders)
            items = [
                lazy(
                    "#{order} ({status}, user {user}): {problems}",
                    order=row.order_id,
                    status=row.status.value,
                    user=row.user_id,
                    problems=Joined(order_problems(row)),
                )
                for row in orders
            ]
            await self._alert(
                "orders",
                [row.order_id for row in orders],
                lazy(
                    "Self-check: {count} order(s) whose ledger rows do not match their "
                    "state: {items}",
                    count=len(orders),
                    items=Joined(items[:ALERT_ITEMS], max(0, len(items) - ALERT_ITEMS)),
                ),
            )
        await self.kv.set(RESULT_KEY, f"{now} {len(balances)} {len(orders)}")
        runs = await self.kv.get(RUNS_KEY)
        await self.kv.set(RUNS_KEY, str(int(runs or 0) + 1))
        if balances or orders:
            return False
        await self.kv.set(PASSED_KEY, str(now))
        return True

    async def _alert(self, kind: str, ids: list[int], text: LazyText) -> None:
        # New findings alert at once; the same ones again only after the throttle period.
        key = f"alert:selfcheck:{kind}:{_digest(ids)}"
        if await self.kv.claim_every(key, ALERT_EVERY_SECONDS):
            await self.notifier.alert_admins(text)

    async def status(self) -> SelfCheckStatus:
        """The last run and the last pass, as stored by `run` (possibly by another process)."""
        result = (await self.kv.get(RESULT_KEY) or "").split()
        passed = await self.kv.get(PASSED_KEY)
        last_pass = int(passed) if passed else None
        if len(result) != 3:
            return SelfCheckStatus(None, 0, 0, last_pass)
        at, balances, orders = (int(part) for part in result)
        return SelfCheckStatus(at, balances, orders, last_pass)
