"""The owner's side of the shop's users: finding them, their card, bans, and moving money in
and out of their wallets (credits, debits, order refunds).

Every action is written to the audit log; where it is a database write, in the same
transaction as the change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from shop.errors import InsufficientFunds, InvalidInput, InvalidState, NotFound
from shop.i18n import _
from shop.models import LIVE_STATUSES, LedgerEntry, LedgerKind, Order, User
from shop.money import Currency
from shop.numbers import parse_uint
from shop.ports import (
    AuditRepository,
    BanRepository,
    Database,
    LedgerRepository,
    OrderRepository,
    UserRepository,
)
from shop.services.orders import OrderService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserCard:
    user: User
    referrer: User | None
    orders: list[Order]
    order_count: int
    ledger: list[LedgerEntry]
    ban: tuple[str, int] | None  # reason and time of the latest ban


class PeopleService:
    def __init__(
        self,
        db: Database,
        users: UserRepository,
        bans: BanRepository,
        ledger: LedgerRepository,
        orders: OrderRepository,
        audit: AuditRepository,
        order_service: OrderService,
        currency: Currency,
        admin_ids: Iterable[int],
    ) -> None:
        self._db = db
        self._users = users
        self._bans = bans
        self._ledger = ledger
        self._orders = orders
        self._audit = audit
        self._order_service = order_service
        self._currency = currency
        self._admin_ids = frozenset(admin_ids)

    # -- finding ----------------------------------------------------------------------------------

    async def find_user(self, query: str) -> User:
        """A user by id or @username; NotFound unless they have started the bot."""
        text = query.strip()
        user: User | None = None
        user_id = parse_uint(text.lstrip("#"))
        if user_id is not None:  # ASCII digits; beyond SQLite's range it names nobody
            user = await self._users.get(user_id)
        elif text:
            user_id = await self._bans.user_id_by_username(text.lstrip("@"))
            user = None if user_id is None else await self._users.get(user_id)
        if user is None:
            raise NotFound(_("No user {user} has started the bot.").format(user=query))
        return user

    async def user_card(self, query: str, orders: int = 5, ledger: int = 5) -> UserCard:
        """Everything the owner needs about one user: profile, flags, last orders and ledger."""
        user = await self.find_user(query)
        referrer = None if user.referrer_id is None else await self._users.get(user.referrer_id)
        return UserCard(
            user=user,
            referrer=referrer,
            orders=await self._orders.for_user(user.id, orders),
            order_count=await self._orders.count_for_user(user.id),
            ledger=await self._ledger.history(user.id, ledger),
            ban=await self._bans.last_ban(user.id) if user.is_banned else None,
        )

    async def live_orders(self, user_id: int) -> int:
        """How many of the user's last 50 orders are still running."""
        recent = await self._orders.for_user(user_id, 50)
        return sum(1 for o in recent if o.status in LIVE_STATUSES)

    # -- money ------------------------------------------------------------------------------------

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
        if await self._users.get(user_id) is None:
            raise NotFound(_("No user {user} has started the bot.").format(user=user_id))
        async with self._db.transaction() as tx:
            if not await self._ledger.apply(tx, user_id, amount, kind, reason, actor_id=actor_id):
                raise InsufficientFunds(
                    _("The balance ({balance}) does not cover that debit.").format(
                        balance=self._currency.format(await self._ledger.balance(user_id))
                    )
                )
            await self._audit.write(
                tx, actor_id, action, user_id, f"{self._currency.format(amount)} {reason}".strip()
            )
        return await self._ledger.balance(user_id)

    async def refund(self, actor_id: int, order_id: int) -> int:
        """The core refund rules (`OrderService.admin_refund`), then the audit entry.

        The refund's own transaction lives in OrderService, so the entry follows it at once.
        """
        refunded = await self._order_service.admin_refund(order_id, actor_id)
        await self._audit.record(
            actor_id, "refund", order_id, self._currency.format(refunded) if refunded else ""
        )
        return refunded

    # -- bans -------------------------------------------------------------------------------------

    async def ban(self, actor_id: int, query: str, reason: str) -> User:
        """Ban a user: every update from them is ignored after one notice. Live orders keep
        running (their money is not taken). Admins cannot be banned."""
        user = await self.find_user(query)
        if user.id in self._admin_ids:
            raise InvalidInput(_("Admins cannot be banned."))
        async with self._db.transaction() as tx:
            if not await self._bans.set_banned(tx, user.id, True):
                raise InvalidState(_("User {user} is already banned.").format(user=user.id))
            await self._audit.write(tx, actor_id, "ban", user.id, reason)
        log.info("User %s banned by %s", user.id, actor_id)
        return user

    async def unban(self, actor_id: int, query: str) -> User:
        """Lift a user's ban."""
        user = await self.find_user(query)
        async with self._db.transaction() as tx:
            if not await self._bans.set_banned(tx, user.id, False):
                raise InvalidState(_("User {user} is not banned.").format(user=user.id))
            await self._audit.write(tx, actor_id, "unban", user.id)
        log.info("User %s unbanned by %s", user.id, actor_id)
        return user

    async def is_banned(self, user_id: int) -> bool:
        return user_id not in self._admin_ids and await self._bans.is_banned(user_id)

    async def claim_ban_notice(self, user_id: int) -> bool:
        """True the first time a banned user shows up after their ban, False afterwards."""
        return await self._bans.claim_ban_notice(user_id)
