"""The wallet: balances change only through the ledger."""

from __future__ import annotations

from dataclasses import dataclass

from shop.errors import InsufficientFunds, InvalidInput, NotFound
from shop.i18n import _
from shop.models import LedgerEntry, LedgerKind
from shop.money import Currency
from shop.ports import Database, LedgerRepository, UserRepository

HISTORY_PAGE = 10


@dataclass(frozen=True)
class HistoryPage:
    entries: list[LedgerEntry]  # newest first
    page: int
    has_next: bool


class WalletService:
    def __init__(
        self, db: Database, users: UserRepository, ledger: LedgerRepository, currency: Currency
    ) -> None:
        self.db = db
        self.users = users
        self.ledger = ledger
        self.currency = currency

    async def balance(self, user_id: int) -> int:
        user = await self.users.get(user_id)
        return 0 if user is None else user.balance

    async def adjust(
        self, user_id: int, amount: int, reason: str, actor_id: int | None = None
    ) -> int:
        """An admin credit (positive) or debit (negative); returns the new balance."""
        if amount == 0:
            raise InvalidInput(_("The amount must not be zero."))
        if await self.users.get(user_id) is None:
            raise NotFound(
                _("No user with id {user_id} has started the bot.").format(user_id=user_id)
            )
        kind = LedgerKind.CREDIT if amount > 0 else LedgerKind.ADJUSTMENT
        async with self.db.transaction() as tx:
            if not await self.ledger.apply(tx, user_id, amount, kind, reason, actor_id=actor_id):
                raise InsufficientFunds(_("The balance does not cover that debit."))
        return await self.ledger.balance(user_id)

    async def history(self, user_id: int, limit: int, offset: int = 0) -> list[LedgerEntry]:
        return await self.ledger.history(user_id, limit, offset)

    async def history_page(self, user_id: int, page: int, size: int = HISTORY_PAGE) -> HistoryPage:
        """One page of the user's ledger, newest first (one extra row tells if there is more)."""
        page = max(page, 0)
        rows = await self.ledger.history(user_id, size + 1, page * size)
        if not rows and page > 0:  # past the end (an old or forged button): the last page
            page = max(0, (await self.ledger.count_for(user_id) - 1) // size)
            rows = await self.ledger.history(user_id, size + 1, page * size)
        return HistoryPage(rows[:size], page, len(rows) > size)
