"""Wallet top-ups through Crypto Pay (@CryptoBot).

A top-up is a row in `topups` (method 'crypto') opened before the invoice exists; its id is the
invoice's payload and the invoice id is stored as its `external_id`. An invoice is priced in the
shop currency (`currency_type` "fiat") and paid in any of CRYPTOPAY_ASSETS; Crypto Pay does the
conversion, so the shop never holds a crypto rate. It is credited exactly once
(`TopupService.credit` is keyed by the row) by whichever comes first: the signed webhook or
the poll of pending top-ups (batched `getInvoices`), which also runs at start, so invoices paid
while the bot was down are credited then. Expired invoices are closed on both sides.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Protocol

from shop.errors import AppError
from shop.i18n import LazyText, _, i18n, lazy, locale_of
from shop.models import Topup, User
from shop.money import Currency
from shop.ports import KeyValueRepository
from shop.providers.cryptopay import (
    FIAT_CURRENCIES,
    CryptoPayClient,
    CryptoPayError,
    CryptoPayRejected,
    CryptoPayTimeout,
    Invoice,
    InvoiceNotFound,
    InvoiceStatus,
    Unauthorized,
)
from shop.services.topups import TopupService

log = logging.getLogger(__name__)

METHOD = "crypto"
BATCH = 100  # invoice ids per getInvoices call (the API takes up to 1000)
CLOSE_GRACE_SECONDS = 5  # Crypto Pay's own clock starts a request later than ours
REUSE_MIN_LEFT = 600  # an unpaid invoice is shown again while this long is left (or half its TTL)


class CryptoUnavailable(AppError):
    user_message = "Crypto payments are unavailable right now. Please try again in a few minutes."


class CryptoNotifier(Protocol):
    async def balance_credited(self, user_id: int, amount: int, balance: int) -> None: ...

    async def alert_admins(self, text: str | LazyText) -> None: ...


class Users(Protocol):
    async def get(self, user_id: int) -> User | None: ...


class Balances(Protocol):
    async def balance(self, user_id: int) -> int: ...


@dataclass(frozen=True)
class CryptoInvoice:
    topup_id: int
    pay_url: str
    invoice_id: int
    amount: int  # shop currency, minor units


@dataclass(frozen=True)
class CryptoCredit:
    topup_id: int
    user_id: int
    amount: int


def supported_fiat(code: str) -> bool:
    """Whether Crypto Pay can price an invoice in this shop currency."""
    return code.upper() in FIAT_CURRENCIES


class CryptoTopups:
    def __init__(
        self,
        client: CryptoPayClient,
        topups: TopupService,
        users: Users,
        balances: Balances,
        notifier: CryptoNotifier,
        currency: Currency,
        assets: Iterable[str],
        ttl_seconds: int,
        kv: KeyValueRepository,
    ) -> None:
        if not supported_fiat(currency.code):
            raise ValueError(f"Crypto Pay cannot price invoices in {currency.code}")
        self.client = client
        self.topups = topups
        self.users = users
        self.balances = balances
        self.notifier = notifier
        self.currency = currency
        self.assets = tuple(assets)
        self.ttl = ttl_seconds
        self.kv = kv

    def _price(self, amount: int) -> str:
        """The invoice amount in the shop currency, as Crypto Pay takes it (`10.50`)."""
        return format(self.currency.to_decimal(amount), "f")

    async def create(self, user_id: int, amount: int) -> CryptoInvoice:
        """Open a pending top-up of `amount` (minor units) and its Crypto Pay invoice.

        createInvoice is never retried: on any failure (a timeout included) the top-up is
        closed at once and the user is asked to try again; no money has moved yet. An unpaid
        invoice of the same amount with enough time left is shown again instead of a new one;
        at most MAX_OPEN_INVOICES are open (`TopupService.open` refuses more).
        """
        await self.topups.check_amount(amount)
        reused = await self._reusable(user_id, amount)
        if reused is not None:
            return reused
        price = self._price(amount)
        topup = await self.topups.open(user_id, METHOD, amount, price, self.currency.code)
        try:
            invoice = await self.client.create_invoice(
                Decimal(price),
                fiat=self.currency.code,
                accepted_assets=self.assets,
                description=_("Balance top-up: {amount}").format(
                    amount=self.currency.format(amount)
                ),
                payload=str(topup.id),
                expires_in=self.ttl,
                allow_comments=False,
                allow_anonymous=True,
            )
        except CryptoPayError as exc:
            await self.topups.expire(topup.id)
            if isinstance(exc, CryptoPayTimeout):
                log.warning("createInvoice for top-up %s timed out; closed locally", topup.id)
            elif isinstance(exc, Unauthorized):
                log.error("Crypto Pay refused the token (createInvoice): %s", exc)
            else:
                log.warning("createInvoice for top-up %s failed: %s", topup.id, exc)
            raise CryptoUnavailable() from None
        if invoice.payload != str(topup.id):
            log.error("Invoice %s came back without our payload", invoice.invoice_id)
            await self.topups.expire(topup.id)
            await self._delete(invoice.invoice_id)
            raise CryptoUnavailable()
        await self.topups.attach(topup.id, str(invoice.invoice_id), invoice.bot_invoice_url)
        log.info("Top-up %s: Crypto Pay invoice %s", topup.id, invoice.invoice_id)
        return CryptoInvoice(topup.id, invoice.bot_invoice_url, invoice.invoice_id, amount)

    async def _reusable(self, user_id: int, amount: int) -> CryptoInvoice | None:
        """The user's open invoice for this amount, if one has enough time left to be paid."""
        least = time.time() + min(REUSE_MIN_LEFT, self.ttl / 2)
        for topup in await self.topups.unpaid(user_id, METHOD):
            external = topup.external_id or ""
            if (
                topup.amount == amount
                and topup.pay_currency == self.currency.code
                and topup.pay_url
                and external.isascii()
                and external.isdigit()
                and topup.expires_at > least
            ):
                log.info("Top-up %s: invoice %s shown again", topup.id, external)
                return CryptoInvoice(topup.id, topup.pay_url, int(external), amount)
        return None

    # -- crediting ---------------------------------------------------------------------------

    def _matches(self, topup: Topup, invoice: Invoice) -> bool:
        """The invoice is the one we issued for this top-up, for the amount we asked."""
        try:
            asked = Decimal(topup.pay_amount)
        except InvalidOperation:
            return False
        return (
            topup.external_id == str(invoice.invoice_id)
            and invoice.payload == str(topup.id)
            and invoice.currency_type == "fiat"
            and invoice.fiat == topup.pay_currency
            and invoice.amount == asked
        )

    async def _credit(self, topup: Topup, invoice: Invoice) -> CryptoCredit | None:
        """Credit a paid invoice once; None when it was credited before or does not match."""
        if invoice.status is not InvoiceStatus.PAID:
            return None
        if not self._matches(topup, invoice):
            log.error(
                "Paid invoice %s does not match top-up %s (payload %r, %s %s %s); not credited",
                invoice.invoice_id,
                topup.id,
                invoice.payload,
                invoice.currency_type,
                invoice.amount,
                invoice.fiat or invoice.asset,
            )
            # Once a day per invoice, remembered in the database (polls repeat every tick).
            if await self.kv.claim_every(f"alert:crypto-mismatch:{invoice.invoice_id}", 86400):
                await self.notifier.alert_admins(
                    lazy(
                        "Crypto Pay invoice {invoice} was paid but does not match top-up "
                        "{topup}; it was not credited. Check it in @CryptoBot.",
                        invoice=invoice.invoice_id,
                        topup=topup.id,
                    )
                )
            return None
        credited = await self.topups.credit(topup.id)
        if credited <= 0:
            return None
        log.info(
            "Top-up %s credited %s (invoice %s, %s %s)",
            topup.id,
            credited,
            invoice.invoice_id,
            invoice.paid_amount,
            invoice.paid_asset,
        )
        return CryptoCredit(topup.id, topup.user_id, credited)

    async def on_paid(self, invoice: Invoice) -> CryptoCredit | None:
        """A signed `invoice_paid` webhook: credit its top-up once (a duplicate credits 0)."""
        topup = await self.topups.by_external(METHOD, str(invoice.invoice_id))
        if topup is None:
            log.warning("Webhook for invoice %s, which is not one of ours", invoice.invoice_id)
            return None
        return await self._credit(topup, invoice)

    async def announce(self, credit: CryptoCredit) -> None:
        """Tell the user, in their language: "+X credited, balance Y"."""
        user = await self.users.get(credit.user_id)
        balance = await self.balances.balance(credit.user_id)
        with i18n.use_locale(locale_of(user)):
            await self.notifier.balance_credited(credit.user_id, credit.amount, balance)

    # -- polling and closing -----------------------------------------------------------------

    async def poll(self) -> int:
        """Check every pending crypto top-up: credit the paid, close the expired.

        Returns how many were credited. Runs on a schedule and once at start.
        """
        pending = await self.topups.pending(METHOD)
        if not pending:
            return 0
        now = time.time()
        by_invoice: dict[int, Topup] = {}
        for topup in pending:
            if topup.external_id is not None and topup.external_id.isdigit():
                by_invoice[int(topup.external_id)] = topup
            elif topup.expires_at + CLOSE_GRACE_SECONDS <= now:
                # Opened, but the invoice was never attached (createInvoice cut off by a crash).
                await self.topups.expire(topup.id)
        credited = 0
        ids = sorted(by_invoice)
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            try:
                invoices = await self.client.get_invoices(invoice_ids=chunk, count=len(chunk))
            except CryptoPayError as exc:
                log.warning("Crypto Pay poll failed: %s", exc)
                return credited
            seen: set[int] = set()
            for invoice in invoices:
                found = by_invoice.get(invoice.invoice_id)
                if found is not None:
                    seen.add(invoice.invoice_id)
                    credited += await self._check(found, invoice, now)
            for invoice_id in chunk:
                missing = by_invoice[invoice_id]
                if invoice_id not in seen and missing.expires_at + CLOSE_GRACE_SECONDS <= now:
                    # Crypto Pay no longer lists it (deleted): it cannot be paid any more.
                    await self.topups.expire(missing.id)
        return credited

    async def _check(self, topup: Topup, invoice: Invoice, now: float) -> int:
        if invoice.status is InvoiceStatus.PAID:
            credit = await self._credit(topup, invoice)
            if credit is None:
                return 0
            await self.announce(credit)
            return 1
        if invoice.status is InvoiceStatus.EXPIRED:
            await self._delete(invoice.invoice_id)
            if await self.topups.expire(topup.id):
                log.info("Top-up %s expired (invoice %s)", topup.id, invoice.invoice_id)
        elif topup.expires_at + CLOSE_GRACE_SECONDS <= now:
            # Still payable upstream but past our expiry: delete it first, so that it cannot be
            # paid after we close it; if that fails, try again on the next poll.
            if await self._delete(invoice.invoice_id):
                await self.topups.expire(topup.id)
                log.info("Top-up %s expired; invoice %s deleted", topup.id, invoice.invoice_id)
        return 0

    async def _delete(self, invoice_id: int) -> bool:
        """deleteInvoice, best effort; True when the invoice is gone."""
        try:
            await self.client.delete_invoice(invoice_id)
        except InvoiceNotFound:
            return True
        except CryptoPayRejected as exc:
            log.info("deleteInvoice %s refused: %s", invoice_id, exc)
            return False
        except CryptoPayError as exc:
            log.info("deleteInvoice %s failed: %s", invoice_id, exc)
            return False
        return True
