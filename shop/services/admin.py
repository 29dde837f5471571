"""What the shop owner does and asks about: figures, users and bans, balance adjustments,
reconciliation with the upstreams, backups and the audit log.

Every admin action is written to the audit log; where the action is a database write, in the
same transaction as the change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from shop.errors import InsufficientFunds, InvalidInput, InvalidState, NotFound
from shop.i18n import _
from shop.models import (
    LIVE_STATUSES,
    AuditEntry,
    LedgerEntry,
    LedgerKind,
    Order,
    ReconOrder,
    RouteSuccess,
    Snapshot,
    TopService,
    TopupTotals,
    User,
)
from shop.money import Currency
from shop.numbers import parse_uint
from shop.ports import (
    AdminRepository,
    AuditRepository,
    Database,
    LedgerRepository,
    OrderRepository,
    ShopSettings,
    SmsRepository,
    UserRepository,
)
from shop.providers.base import ProviderError, Route
from shop.services.orders import OrderService
from shop.services.pricing import Pricing
from shop.services.selfcheck import SelfCheckService, SelfCheckStatus
from shop.services.topups import TopupService

log = logging.getLogger(__name__)

DAY = 86400
BACKUP_GLOB = "numbot-*.db"
SNAPSHOT_KEEP_DAYS = 400
AUDIT_PER_PAGE = 10


@dataclass(frozen=True)
class Period:
    orders: int
    paid_orders: int
    revenue: int
    cost: int

    @property
    def margin(self) -> int:
        return self.revenue - self.cost


@dataclass(frozen=True)
class SmsPeriod:
    sends: int
    revenue: int
    cost: int  # upstream cost in shop minor units (from SMSPM's per-message prices)

    @property
    def margin(self) -> int:
        return self.revenue - self.cost


@dataclass(frozen=True)
class AccountBalance:
    title: str
    currency: str
    amount: Decimal | None
    error: str | None
    rate: Decimal
    account: str = ""
    shop: int | None = None  # the amount in shop minor units
    low: bool = False  # under LOW_BALANCE_WARNING


@dataclass(frozen=True)
class Stats:
    users: int
    users_today: int
    today: Period
    total: Period
    sms_today: SmsPeriod | None = None
    sms_total: SmsPeriod | None = None
    week: Period | None = None
    active_week: int = 0
    banned: int = 0
    routes: list[RouteSuccess] = field(default_factory=list)
    top_services: list[TopService] = field(default_factory=list)
    # today / 7 days / total; None while no top-up was ever paid
    topups: tuple[TopupTotals, TopupTotals, TopupTotals] | None = None
    balances: list[AccountBalance] = field(default_factory=list)
    self_check: SelfCheckStatus | None = None


@dataclass(frozen=True)
class UserCard:
    user: User
    referrer: User | None
    orders: list[Order]
    order_count: int
    ledger: list[LedgerEntry]
    ban: tuple[str, int] | None  # reason and time of the latest ban


@dataclass(frozen=True)
class PricingView:
    default_markup: Decimal
    rules: list[tuple[str, str, Decimal]]  # provider or "", service or "", percent
    topup_min: int  # minor units
    stars_rate: Decimal  # shop-currency major units per star


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


def start_of_today() -> int:
    now = datetime.now(UTC)
    return int(now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())


def seconds_until_hour(hour: int, now: datetime | None = None) -> float:
    """Seconds from `now` to the next `hour`:00 UTC (a full day when it is that moment)."""
    now = now or datetime.now(UTC)
    target = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if target <= now:
        target += timedelta(days=1)
    return (target - now).total_seconds()


def _returned_upstream(order: ReconOrder) -> bool:
    """The upstream gave the money back: no code, cancelled or expired, and no failed cancel."""
    return (
        order.has_number
        and not order.has_code
        and order.status in ("cancelled", "expired")
        and not order.needs_attention
    )


class AdminService:
    def __init__(
        self,
        db: Database,
        routes: dict[str, Route],
        currency: Currency,
        settings: ShopSettings,
        *,
        repo: AdminRepository,
        users: UserRepository,
        order_repo: OrderRepository,
        ledger: LedgerRepository,
        audit: AuditRepository,
        orders: OrderService | None = None,
        pricing: Pricing | None = None,
        sms: SmsRepository | None = None,
        topups: TopupService | None = None,
        self_check: SelfCheckService | None = None,
    ) -> None:
        self.db = db
        self.routes = routes
        self.currency = currency
        self.settings = settings
        self.admin_ids = frozenset(settings.admin_ids)
        self.order_service = orders
        self.pricing = pricing
        self.sms = sms
        self.topups = topups
        self.self_check = self_check
        self.users = users
        self.orders = order_repo
        self.ledger = ledger
        self.audit = audit
        self.repo = repo

    # -- figures ----------------------------------------------------------------------------------

    async def stats(self) -> Stats:
        """Users, orders, revenue and margin today (UTC), over 7 days and in total; route success
        rates, top services, top-ups, upstream balances and the last self-check.

        Revenue counts orders that were charged and not refunded.
        """
        today = start_of_today()
        week = int(time.time()) - 7 * DAY

        async def period(since: int) -> Period:
            paid, revenue, cost = await self.orders.stats(since)
            return Period(await self.orders.count_since(since), paid, revenue, cost)

        async def sms_period(since: int) -> SmsPeriod | None:
            if self.sms is None:
                return None
            sends, revenue, cost_eur = await self.sms.stats(since)
            return SmsPeriod(
                sends, revenue, self.currency.convert_up(cost_eur, self.settings.smspm_rate)
            )

        counts = await self.repo.user_counts(today, week)
        topups = None
        total_topups = await self.repo.topups(0)
        if total_topups.count:
            topups = (await self.repo.topups(today), await self.repo.topups(week), total_topups)
        return Stats(
            users=counts.total,
            users_today=counts.new_since,
            today=await period(today),
            total=await period(0),
            sms_today=await sms_period(today),
            sms_total=await sms_period(0),
            week=await period(week),
            active_week=counts.active_since,
            banned=counts.banned,
            routes=await self.repo.route_success(week),
            top_services=await self.repo.top_services(week, 5),
            topups=topups,
            balances=await self.balances(),
            self_check=await self.self_check.status() if self.self_check else None,
        )

    def _accounts(self) -> dict[str, Route]:
        accounts: dict[str, Route] = {}
        for route in self.routes.values():
            accounts.setdefault(route.account, route)
        return accounts

    @staticmethod
    def _account_title(route: Route) -> str:
        return route.title.split(" Server")[0]

    async def balances(self) -> list[AccountBalance]:
        """One line per upstream account (SMSPalm's two servers share one balance)."""
        threshold = self.currency.convert_up(self.settings.low_balance_warning, Decimal(1))

        async def one(route: Route) -> AccountBalance:
            title = self._account_title(route)
            try:
                amount = await asyncio.wait_for(route.balance(), timeout=20)
            except (ProviderError, TimeoutError) as exc:
                return AccountBalance(
                    title, route.currency, None, type(exc).__name__, route.rate, route.account
                )
            shop = self.currency.convert_up(amount, route.rate)
            return AccountBalance(
                title,
                route.currency,
                amount,
                None,
                route.rate,
                route.account,
                shop,
                shop < threshold and not route.is_sandbox,
            )

        return list(await asyncio.gather(*(one(r) for r in self._accounts().values())))

    async def pricing_view(self) -> PricingView:
        """The markup rules, the minimum top-up and the Stars rate as they apply now (the
        top-up values from the top-up service, which keeps /setmintopup's and /setstarsrate's
        overrides; the settings without it)."""
        if self.topups is not None:
            topup_min = (await self.topups.limits()).min
            stars_rate = await self.topups.stars_rate()
        else:
            topup_min = self.currency.convert_up(self.settings.topup_min, Decimal(1))
            stars_rate = self.settings.stars_rate
        return PricingView(
            default_markup=self.settings.markup_percent,
            rules=await self.repo.markup_rules(),
            topup_min=topup_min,
            stars_rate=stars_rate,
        )

    # -- users -----------------------------------------------------------------------------------

    async def find_user(self, query: str) -> User:
        """A user by id or @username; NotFound unless they have started the bot."""
        text = query.strip()
        user: User | None = None
        user_id = parse_uint(text.lstrip("#"))
        if user_id is not None:  # ASCII digits; beyond SQLite's range it names nobody
            user = await self.users.get(user_id)
        elif text:
            user_id = await self.repo.user_id_by_username(text.lstrip("@"))
            user = None if user_id is None else await self.users.get(user_id)
        if user is None:
            raise NotFound(_("No user {user} has started the bot.").format(user=query))
        return user

    async def user_card(self, query: str, orders: int = 5, ledger: int = 5) -> UserCard:
        """Everything the owner needs about one user: profile, flags, last orders and ledger."""
        user = await self.find_user(query)
        referrer = None if user.referrer_id is None else await self.users.get(user.referrer_id)
        return UserCard(
            user=user,
            referrer=referrer,
            orders=await self.orders.for_user(user.id, orders),
            order_count=await self.orders.count_for_user(user.id),
            ledger=await self.ledger.history(user.id, ledger),
            ban=await self.repo.last_ban(user.id) if user.is_banned else None,
        )

    async def credit(self, actor_id: int, user_id: int, amount: int, reason: str) -> int:
        """Add `amount` to a wallet (ledger kind 'credit'); returns the new balance."""
        if amount <= 0:
            raise InvalidInput(_("The amount must be positive."))
        return await self._move(actor_id, user_id, amount, LedgerKind.CREDIT, reason, "addbalance")

    async def debit(self, actor_id: int, user_id: int, amount: int, reason: str) -> int:
        """Take `amount` from a wallet (ledger kind 'adjustment'); refused, changing nothing, if
        the balance does not cover it. Returns the new balance."""
        if amount <= 0:
            raise InvalidInput(_("The amount must be positive."))
        return await self._move(
            actor_id, user_id, -amount, LedgerKind.ADJUSTMENT, reason, "subbalance"
        )

    async def _move(
        self, actor_id: int, user_id: int, amount: int, kind: LedgerKind, reason: str, action: str
    ) -> int:
        if await self.users.get(user_id) is None:
            raise NotFound(_("No user {user} has started the bot.").format(user=user_id))
        async with self.db.transaction() as tx:
            if not await self.ledger.apply(tx, user_id, amount, kind, reason, actor_id=actor_id):
                raise InsufficientFunds(
                    _("The balance ({balance}) does not cover that debit.").format(
                        balance=self.currency.format(await self.ledger.balance(user_id))
                    )
                )
            await self.audit.write(
                tx, actor_id, action, user_id, f"{self.currency.format(amount)} {reason}".strip()
            )
        return await self.ledger.balance(user_id)

    async def ban(self, actor_id: int, query: str, reason: str) -> User:
        """Ban a user: every update from them is ignored after one notice. Live orders keep
        running (their money is not taken). Admins cannot be banned."""
        user = await self.find_user(query)
        if user.id in self.admin_ids:
            raise InvalidInput(_("Admins cannot be banned."))
        async with self.db.transaction() as tx:
            if not await self.repo.set_banned(tx, user.id, True):
                raise InvalidState(_("User {user} is already banned.").format(user=user.id))
            await self.audit.write(tx, actor_id, "ban", user.id, reason)
        log.info("User %s banned by %s", user.id, actor_id)
        return user

    async def unban(self, actor_id: int, query: str) -> User:
        user = await self.find_user(query)
        async with self.db.transaction() as tx:
            if not await self.repo.set_banned(tx, user.id, False):
                raise InvalidState(_("User {user} is not banned.").format(user=user.id))
            await self.audit.write(tx, actor_id, "unban", user.id)
        log.info("User %s unbanned by %s", user.id, actor_id)
        return user

    async def is_banned(self, user_id: int) -> bool:
        return user_id not in self.admin_ids and await self.repo.is_banned(user_id)

    async def claim_ban_notice(self, user_id: int) -> bool:
        """True the first time a banned user shows up after their ban, False afterwards."""
        return await self.repo.claim_ban_notice(user_id)

    async def live_orders(self, user_id: int) -> int:
        return sum(1 for o in await self.orders.for_user(user_id, 50) if o.status in LIVE_STATUSES)

    # -- orders and prices ------------------------------------------------------------------------

    async def refund(self, actor_id: int, order_id: int) -> int:
        """The core refund rules (`OrderService.admin_refund`), then the audit entry.

        The refund's own transaction lives in OrderService, so the entry follows it at once.
        """
        assert self.order_service is not None
        refunded = await self.order_service.admin_refund(order_id, actor_id)
        await self.audit.record(
            actor_id, "refund", order_id, self.currency.format(refunded) if refunded else ""
        )
        return refunded

    async def set_markup(
        self, actor_id: int, percent: Decimal, provider: str, service_id: int, service: str
    ) -> None:
        assert self.pricing is not None
        await self.pricing.set_markup(percent, provider, service_id)
        await self.audit.record(
            actor_id, "setmarkup", f"{provider or '*'}/{service or '*'}", f"{percent}%"
        )

    async def record(self, actor_id: int, action: str, target: object, detail: str = "") -> None:
        """Write an audit entry for an action whose change happened elsewhere."""
        await self.audit.record(actor_id, action, target, detail)

    async def audit_page(self, page: int) -> tuple[list[AuditEntry], int, int]:
        """(entries, page, pages) of the audit log, newest first."""
        total = await self.repo.audit_count()
        pages = max(1, -(-total // AUDIT_PER_PAGE))
        page = min(max(page, 0), pages - 1)
        entries = await self.audit.recent(AUDIT_PER_PAGE, page * AUDIT_PER_PAGE)
        return entries, page, pages

    # -- reconciliation ---------------------------------------------------------------------------

    async def snapshot_balances(self) -> None:
        """The balance-snapshot job: each upstream account's balance, kept for /reconcile."""
        now = int(time.time())
        for account, route in self._accounts().items():
            if route.is_sandbox:
                continue
            try:
                amount = await asyncio.wait_for(route.balance(), timeout=20)
            except (ProviderError, TimeoutError) as exc:
                log.info("Balance snapshot of %s skipped: %s", account, type(exc).__name__)
                continue
            await self.repo.add_snapshot(account, route.currency, amount, now)
        await self.repo.prune_snapshots(now - SNAPSHOT_KEEP_DAYS * DAY)

    async def reconcile(self, days: int) -> list[Reconciliation]:
        """Per upstream account over the last `days` days: what we paid upstream, what customers
        paid us, the margin, and the balance change between snapshots against what our orders
        explain (see `Reconciliation` for which orders cost us money)."""
        since = int(time.time()) - days * DAY
        routes_of: dict[str, list[Route]] = {}
        for route in self.routes.values():
            routes_of.setdefault(route.account, []).append(route)
        results = []
        for account, routes in routes_of.items():
            keys = [r.key for r in routes]
            window = await self.repo.snapshot_window(account, since)
            start = since if window is None else min(since, window[0].taken_at)
            orders = await self.repo.recon_orders(keys, start)
            results.append(self._reconcile(account, routes[0], orders, since, window))
        return results

    def _reconcile(
        self,
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
            title=self._account_title(route),
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

    # -- backups ----------------------------------------------------------------------------------

    async def backup(self, actor_id: int | None = None) -> Path:
        """A consistent copy of the database in BACKUP_DIR (timestamped); keeps the newest
        BACKUP_KEEP copies. An admin's backup is written to the audit log."""
        directory = self.settings.backup_dir
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / datetime.now(UTC).strftime("numbot-%Y%m%d-%H%M%S-%f.db")
        partial = path.with_suffix(".part")
        await self.repo.backup(partial)
        partial.replace(path)
        self._rotate(directory)
        log.info("Database backed up to %s", path)
        if actor_id is not None:
            await self.audit.record(actor_id, "backup", path.name, str(path.stat().st_size))
        return path

    def backups(self) -> list[Path]:
        """The kept backups, oldest first."""
        directory = self.settings.backup_dir
        return sorted(directory.glob(BACKUP_GLOB)) if directory.is_dir() else []

    def _rotate(self, directory: Path) -> None:
        """Delete all but the newest BACKUP_KEEP backups (names sort by time)."""
        files = sorted(directory.glob(BACKUP_GLOB))
        for old in files[: max(0, len(files) - self.settings.backup_keep)]:
            old.unlink(missing_ok=True)
