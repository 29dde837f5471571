"""Promo codes: an admin creates one, each user redeems it once, total uses are capped."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from shop.errors import AppError, InvalidInput
from shop.i18n import _
from shop.models import LedgerKind, PromoCode
from shop.money import Currency
from shop.ports import AuditRepository, Database, LedgerRepository, PromoRepository

CODE_RE = re.compile(r"^[A-Za-z0-9_-]{3,32}$")
DAYS_RE = re.compile(r"^([0-9]{1,4})d$", re.IGNORECASE)


class PromoRefused(AppError):
    """Unknown, used, expired or exhausted code: the message says which."""


@dataclass(frozen=True)
class Redeemed:
    code: str
    amount: int
    balance: int


def parse_expiry(text: str, now: float | None = None) -> int:
    """`7d` (days from now) or an ISO date (valid through that day, UTC) or ISO date-time
    (UTC unless it names its offset). Returns a unix time; ValueError otherwise."""
    now = time.time() if now is None else now
    days = DAYS_RE.match(text.strip())
    if days is not None:
        if int(days.group(1)) <= 0:
            raise ValueError("at least 1d")
        return int(now) + int(days.group(1)) * 86400
    value = text.strip()
    if len(value) == 10:
        day = date.fromisoformat(value)
        end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        return int(end.timestamp())
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


class PromoService:
    def __init__(
        self,
        db: Database,
        repo: PromoRepository,
        ledger: LedgerRepository,
        audit: AuditRepository,
        currency: Currency,
    ) -> None:
        self.db = db
        self.repo = repo
        self.ledger = ledger
        self.audit = audit
        self.currency = currency

    async def create(
        self, admin_id: int, code: str, amount: int, max_uses: int, expires_at: int | None
    ) -> PromoCode:
        """A new code (audit-logged); InvalidInput when it is malformed or exists."""
        if not CODE_RE.match(code):
            raise InvalidInput(_("A code is 3-32 letters, digits, '-' or '_'."))
        if amount <= 0 or max_uses <= 0:
            raise InvalidInput(_("The amount and the number of uses must be positive."))
        if expires_at is not None and expires_at <= time.time():
            raise InvalidInput(_("That expiry is in the past."))
        async with self.db.transaction() as tx:
            if not await self.repo.create(tx, code, amount, max_uses, expires_at, admin_id):
                raise InvalidInput(_("The code {code} exists already.").format(code=code))
            await self.audit.write(
                tx,
                admin_id,
                "newpromo",
                code,
                f"{self.currency.format(amount)} x{max_uses} expires {expires_at or 'never'}",
            )
            promo = await self.repo.get(tx, code)
        assert promo is not None
        return promo

    async def redeem(self, user_id: int, code: str) -> Redeemed:
        """Credit the code's amount once per user, within the cap and before expiry."""
        code = code.strip()
        async with self.db.transaction() as tx:
            promo = await self.repo.get(tx, code) if CODE_RE.match(code) else None
            if promo is None:
                raise PromoRefused(_("Unknown promo code."))
            if await self.repo.redeemed(tx, promo.code, user_id):
                raise PromoRefused(_("You have already used this promo code."))
            if promo.expires_at is not None and promo.expires_at <= time.time():
                raise PromoRefused(_("This promo code has expired."))
            if not await self.repo.take_use(tx, promo.code):
                raise PromoRefused(_("This promo code has been used up."))
            await self.repo.record(tx, promo.code, user_id)
            await self.ledger.apply(
                tx,
                user_id,
                promo.amount,
                LedgerKind.PROMO,
                "promo code",
                promo_code=promo.code,
            )
        return Redeemed(promo.code, promo.amount, await self.ledger.balance(user_id))
