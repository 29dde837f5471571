"""Wallet top-ups: invoices (Telegram Stars, Crypto Pay), crediting once, Stars refunds,
runtime limits and referral bonuses.

Crediting is keyed by the top-up row: `pending/expired -> paid` is one conditional UPDATE in
the same transaction as the ledger row (unique per top-up in the schema) and the inviter's bonus,
so a duplicated payment update, a webhook racing a poll, or a restart in between credits once.

Every Stars charge Telegram reports is recorded by its charge id (`star_charges`) and ends
either credited or refunded. Two pre-checkouts of one invoice can both be approved (nothing is
paid yet), so Telegram can take the stars twice: the second charge is refunded at once with
refundStarPayment rather than credited. The customer meant one top-up of that amount, and a
refund gives back exactly what was taken, by the way it was paid, while a credit would turn an
accidental payment into shop credit they cannot take out. The admins are told either way.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Protocol

from shop.errors import AppError, InsufficientFunds, InvalidInput, NotFound
from shop.i18n import LazyText, _, lazy
from shop.models import LedgerKind, StarCharge, Topup
from shop.money import Currency
from shop.numbers import parse_uint
from shop.ports import (
    AuditRepository,
    Database,
    KeyValueRepository,
    LedgerRepository,
    ShopSettings,
    TopupRepository,
    Tx,
    UserRepository,
)

log = logging.getLogger(__name__)

STARS = "stars"
XTR = "XTR"
PAYLOAD_PREFIX = "t:"
KV_MIN = "topup_min"
KV_STARS_RATE = "stars_rate"
REFERRAL_WINDOW = 3600  # a /start ref_<id> links users registered at most this long ago
MAX_OPEN_INVOICES = 5  # unpaid, unexpired invoices per user and method; more are refused
REFUND_RETRY_AFTER = 60  # a refund without an answer is retried by the job after this long

# How a Stars charge ended (star_charges.status) and why one was not credited.
CREDITED = "credited"
REFUND_DUE = "refund_due"
REFUNDED = "refunded"
REFUND_FAILED = "refund_failed"
DUPLICATE = "duplicate"
UNMATCHED = "unmatched"


class ReferralNotifier(Protocol):
    async def referral_earned(
        self, inviter_id: int, bonus: int, balance: int, invitee_id: int
    ) -> None:
        """Tell an inviter about the bonus an invitee's top-up earned them."""
        ...


class TopupNotifier(ReferralNotifier, Protocol):
    async def payment_returned(self, user_id: int, stars: int) -> None:
        """Tell a customer that a payment we could not use was refunded to them."""
        ...

    async def stars_refunded(self, user_id: int, amount: int, stars: str, balance: int) -> None:
        """Tell a customer their Stars came back and the wallet was debited `amount`."""
        ...

    async def alert_admins(self, text: str | LazyText) -> None: ...


class RefundAnswer(enum.Enum):
    """Telegram's answer to refundStarPayment."""

    REFUNDED = "refunded"
    ALREADY_REFUNDED = "already_refunded"
    REFUSED = "refused"  # a Bad Request: asking again will not help
    NO_ANSWER = "no_answer"  # network error, 5xx, flood wait: it may be asked again


class StarsGateway(Protocol):
    """The port for "refund this Stars charge" (refundStarPayment), implemented by the
    Telegram adapter: it only asks, this service decides what the answer means."""

    async def refund(self, user_id: int, charge_id: str) -> tuple[RefundAnswer, str]:
        """Ask Telegram to return a charge's stars: the answer and Telegram's words."""
        ...


class CheckoutError(enum.StrEnum):
    """Why a Stars pre-checkout query is refused."""

    UNKNOWN_USER = "unknown_user"
    BANNED = "banned"
    BAD_PAYLOAD = "bad_payload"
    NOT_PENDING = "not_pending"
    WRONG_AMOUNT = "wrong_amount"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Limits:
    min: int
    max: int
    presets: tuple[int, ...]


@dataclass(frozen=True)
class StarsInvoice:
    topup: Topup
    stars: int
    payload: str


@dataclass(frozen=True)
class StarsPayment:
    """A successful_payment, recorded: credited to its top-up, or (not) refunded yet."""

    charge: StarCharge
    credited: int  # 0 unless this update credited it
    balance: int
    replay: bool  # Telegram reported this charge before


@dataclass(frozen=True)
class TelegramRefund:
    """A refunded_payment, recorded once per charge."""

    charge_id: str
    user_id: int
    stars: int
    outcome: str  # debited | ours (debited by /refundstars) | uncredited | unknown | replay
    amount: int = 0  # what the top-up had credited
    debited: int = 0
    shortfall: int = 0  # what the balance no longer covered
    balance: int = 0
    inviter_id: int | None = None  # who earned a referral bonus on this top-up
    bonus_taken: int = 0  # the bonus taken back from the inviter
    bonus_kept: int = 0  # the bonus the inviter had spent already, so it stays with them


@dataclass(frozen=True)
class StarsRefund:
    topup: Topup
    amount: int
    balance: int
    inviter_id: int | None = None  # who earned a referral bonus on this top-up
    bonus_taken: int = 0  # the bonus taken back from the inviter with the refund
    bonus_kept: int = 0  # the bonus the inviter had spent already, so it stays with them


class StarsRefundOutcome(enum.Enum):
    """How an admin's Stars refund (/refundstars) ended."""

    UNCREDITED = "uncredited"  # a charge never credited: asked again, no wallet touched
    REFUNDED = "refunded"  # debited, and Telegram returned the stars
    DEBITED_BEFORE = "debited_before"  # an earlier attempt debited; Telegram returned them now
    ALREADY_REFUNDED = "already_refunded"  # Telegram had returned them; the debit stands
    REFUSED = "refused"  # Telegram refused: the debit was reversed, nothing changed
    NO_ANSWER = "no_answer"  # Telegram did not answer: the debit stands, ask again later


@dataclass(frozen=True)
class AdminStarsRefund:
    outcome: StarsRefundOutcome
    charge_id: str
    detail: str = ""  # Telegram's words, when it refused or did not answer
    charge: StarCharge | None = None  # UNCREDITED: the charge as it stands now
    refund: StarsRefund | None = None  # what was debited (REFUNDED, DEBITED_BEFORE)


class TooManyInvoices(AppError):
    """MAX_OPEN_INVOICES unpaid invoices of one method are open already."""

    def __init__(self, count: int) -> None:
        super().__init__(
            _(
                "You have {count} unpaid invoices open. Pay one of them or wait until they "
                "expire, then try again."
            ).format(count=count)
        )


class TopupService:
    def __init__(
        self,
        db: Database,
        repo: TopupRepository,
        users: UserRepository,
        ledger: LedgerRepository,
        kv: KeyValueRepository,
        audit: AuditRepository,
        currency: Currency,
        settings: ShopSettings,
        notifier: TopupNotifier | None = None,
        stars: StarsGateway | None = None,
    ) -> None:
        self.db = db
        self.repo = repo
        self.users = users
        self.ledger = ledger
        self.kv = kv
        self.audit = audit
        self.currency = currency
        self.settings = settings
        self.notifier = notifier
        self.stars = stars

    # -- the contract Crypto Pay codes against ---------------------------------------------

    async def open(
        self, user_id: int, method: str, amount: int, pay_amount: str, pay_currency: str
    ) -> Topup:
        """A pending top-up of `amount` (shop minor units); expires after INVOICE_TTL_SECONDS.
        Refused (TooManyInvoices) while the user has MAX_OPEN_INVOICES unpaid ones of `method`."""
        async with self.db.transaction() as tx:
            if (
                await self.repo.count_unpaid(tx, user_id, method, int(time.time()))
                >= MAX_OPEN_INVOICES
            ):
                raise TooManyInvoices(MAX_OPEN_INVOICES)
            topup_id = await self.repo.insert(
                tx,
                user_id,
                method,
                amount,
                pay_amount,
                pay_currency,
                self.settings.invoice_ttl_seconds,
            )
            topup = await self.repo.lock(tx, topup_id)
        assert topup is not None
        return topup

    async def unpaid(self, user_id: int, method: str) -> list[Topup]:
        """The user's unpaid, unexpired top-ups of `method`, newest first."""
        return await self.repo.unpaid(user_id, method, int(time.time()))

    async def attach(self, topup_id: int, external_id: str, pay_url: str) -> None:
        """Remember the upstream invoice id and its payment link."""
        async with self.db.transaction() as tx:
            await self.repo.attach(tx, topup_id, external_id, pay_url)

    async def credit(self, topup_id: int, charge_id: str | None = None) -> int:
        """Credit a paid top-up once: pending/expired -> paid, a 'topup' ledger row and the
        inviter's referral bonus, in one transaction. Returns the amount credited, 0 when it
        was credited before (or the top-up does not exist / was refunded)."""
        async with self.db.transaction() as tx:
            topup = await self._lock(tx, topup_id)
            if topup is None or not await self.repo.mark_paid(tx, topup_id, charge_id):
                return 0
            bonus = await self._credit_in(tx, topup)
        await self._announce_bonus(bonus, topup.user_id)
        return topup.amount

    async def _lock(
        self, tx: Tx, topup_id: int | None = None, charge_id: str | None = None
    ) -> Topup | None:
        """The top-up (by id or by its charge), locked after its payer. Every transaction that
        moves a top-up's money takes the payer's lock first (`pay_stars` must, to serialize one
        payer's payments), so one that starts from the top-up takes them in the same order;
        the other order deadlocks on PostgreSQL against a payment of the same top-up."""
        payer = await self.repo.payer_of(tx, topup_id, charge_id)
        if payer is None:
            return None
        await self.repo.lock_payer(tx, payer)
        if charge_id is not None:
            return await self.repo.lock_by_charge(tx, charge_id)
        assert topup_id is not None
        return await self.repo.lock(tx, topup_id)

    async def _credit_in(self, tx: Tx, topup: Topup) -> tuple[int, int, int] | None:
        """The credit of a top-up just marked paid, and its referral bonus, in `tx`."""
        await self.ledger.apply(
            tx,
            topup.user_id,
            topup.amount,
            LedgerKind.TOPUP,
            f"{topup.method} top-up",
            topup_id=topup.id,
        )
        return await self._referral_bonus(tx, topup)

    async def _announce_bonus(self, bonus: tuple[int, int, int] | None, invitee_id: int) -> None:
        if bonus is None or self.notifier is None:
            return
        inviter_id, amount, balance = bonus
        try:
            await self.notifier.referral_earned(inviter_id, amount, balance, invitee_id)
        except Exception:  # the bonus is in the ledger; a lost notice must not undo it
            log.exception("Referral notice to %s failed", inviter_id)

    async def expire(self, topup_id: int) -> bool:
        """pending -> expired; False if it was paid (or expired) already."""
        async with self.db.transaction() as tx:
            return await self.repo.mark_expired(tx, topup_id)

    async def pending(self, method: str) -> list[Topup]:
        return await self.repo.pending(method)

    async def by_external(self, method: str, external_id: str) -> Topup | None:
        return await self.repo.by_external(method, external_id)

    async def get(self, topup_id: int) -> Topup | None:
        return await self.repo.get(topup_id)

    # -- limits and rates (runtime, in the kv table, falling back to settings) ---------------

    async def limits(self) -> Limits:
        stored = await self.kv.get(KV_MIN)
        minimum = (
            int(stored)
            if stored is not None
            else self.currency.convert_up(self.settings.topup_min, Decimal(1))
        )
        maximum = self.currency.convert_up(self.settings.topup_max, Decimal(1))
        presets = tuple(
            p
            for p in (self.currency.convert_up(v, Decimal(1)) for v in self.settings.topup_presets)
            if minimum <= p <= maximum
        )
        return Limits(minimum, maximum, presets)

    async def stars_rate(self) -> Decimal:
        """Shop-currency major units per star."""
        stored = await self.kv.get(KV_STARS_RATE)
        return Decimal(stored) if stored is not None else self.settings.stars_rate

    async def check_amount(self, amount: int) -> int:
        """The amount if it is within the limits; InvalidInput with the limits otherwise."""
        limits = await self.limits()
        if not limits.min <= amount <= limits.max:
            raise InvalidInput(
                _("The amount must be between {min} and {max}.").format(
                    min=self.currency.format(limits.min), max=self.currency.format(limits.max)
                )
            )
        return amount

    async def parse_amount(self, text: str) -> int:
        """A typed amount in minor units, validated against the limits."""
        limits = await self.limits()
        try:
            amount = self.currency.parse(text)
        except ValueError:
            raise InvalidInput(
                _(
                    "Please send a positive amount with at most {decimals} decimals, "
                    "between {min} and {max}, for example {example}."
                ).format(
                    decimals=self.currency.exponent,
                    min=self.currency.format(limits.min),
                    max=self.currency.format(limits.max),
                    example=self.currency.to_decimal(
                        limits.presets[0] if limits.presets else limits.min
                    ),
                )
            ) from None
        return await self.check_amount(amount)

    async def set_min(self, admin_id: int, amount: int) -> None:
        """Change the minimum top-up at runtime (audit-logged)."""
        maximum = self.currency.convert_up(self.settings.topup_max, Decimal(1))
        if amount > maximum:
            raise InvalidInput(
                _("The minimum cannot exceed the maximum top-up ({max}).").format(
                    max=self.currency.format(maximum)
                )
            )
        await self.kv.set(KV_MIN, str(amount))
        await self.audit.record(admin_id, "setmintopup", "", self.currency.format(amount))

    async def set_stars_rate(self, admin_id: int, text: str) -> Decimal:
        """Change the shop-currency value of one star at runtime (audit-logged)."""
        try:
            rate = Decimal(text.strip().replace(",", "."))
        except InvalidOperation:
            raise InvalidInput(_("The rate must be a positive number, e.g. 0.013.")) from None
        if not rate.is_finite() or rate <= 0 or rate > 1000:
            raise InvalidInput(_("The rate must be a positive number, e.g. 0.013."))
        old = await self.stars_rate()
        await self.kv.set(KV_STARS_RATE, str(rate))
        await self.audit.record(admin_id, "setstarsrate", "", f"{old} -> {rate}")
        return rate

    # -- Telegram Stars ----------------------------------------------------------------------

    async def stars_for(self, amount: int) -> int:
        """Stars to charge for `amount` (minor units): rounded up, at least one."""
        stars = (self.currency.to_decimal(amount) / await self.stars_rate()).to_integral_value(
            rounding=ROUND_CEILING
        )
        return max(int(stars), 1)

    @property
    def stars_enabled(self) -> bool:
        """Whether this shop takes Telegram Stars (see `Settings.stars_enabled`)."""
        return self.settings.stars_enabled

    @property
    def invoice_ttl_seconds(self) -> int:
        """How long an invoice can be paid."""
        return self.settings.invoice_ttl_seconds

    @property
    def referral_percent(self) -> Decimal:
        """The inviter's share of each top-up of the users they invited (0: paused)."""
        return self.settings.referral_percent

    async def open_stars(self, user_id: int, amount: int) -> StarsInvoice:
        """A pending Stars top-up and the invoice's star count and payload."""
        if not self.stars_enabled:
            raise AppError(_("Telegram Stars are not available."))
        await self.check_amount(amount)
        stars = await self.stars_for(amount)
        topup = await self.open(user_id, STARS, amount, str(stars), XTR)
        return StarsInvoice(topup, stars, f"{PAYLOAD_PREFIX}{topup.id}")

    @staticmethod
    def topup_id(payload: str) -> int | None:
        """The top-up id of a Stars invoice payload, or None unless the payload is exactly one
        we issue (`t:<id>`: ASCII digits, no leading zeros, within SQLite's range)."""
        if not payload.startswith(PAYLOAD_PREFIX):
            return None
        digits = payload[len(PAYLOAD_PREFIX) :]
        topup_id = parse_uint(digits)
        return topup_id if topup_id is not None and str(topup_id) == digits else None

    async def check_checkout(
        self, user_id: int, payload: str, currency: str, total: int
    ) -> CheckoutError | None:
        """Validate a pre-checkout query (two reads, nothing slow). None means approve."""
        user = await self.users.get(user_id)
        if user is None:
            return CheckoutError.UNKNOWN_USER
        if user.is_banned:
            return CheckoutError.BANNED
        topup_id = self.topup_id(payload)
        topup = None if topup_id is None else await self.repo.get(topup_id)
        if topup is None or topup.user_id != user_id or topup.method != STARS:
            return CheckoutError.BAD_PAYLOAD
        if topup.status != "pending":
            return CheckoutError.NOT_PENDING
        if currency != XTR or str(total) != topup.pay_amount:
            return CheckoutError.WRONG_AMOUNT
        if topup.expires_at <= time.time():
            return CheckoutError.EXPIRED
        return None

    async def pay_stars(
        self, user_id: int, payload: str, charge_id: str, currency: str, stars: int
    ) -> StarsPayment:
        """A successful Stars payment: record the charge once, then credit its top-up, or, when
        it cannot be credited (the top-up was paid by another charge, or the payment matches
        no pending top-up of this user), refund it to the payer and alert the admins.

        The money was taken, so an invoice that expired in between is still credited.
        """
        topup_id = self.topup_id(payload)
        bonus: tuple[int, int, int] | None = None
        credited = 0
        async with self.db.transaction() as tx:
            # One payer's payments one at a time (several instances: a retried delivery of
            # the same payment waits here and then finds its charge recorded).
            await self.repo.lock_payer(tx, user_id)
            known = await self.repo.charge_in(tx, charge_id)
            if known is None:
                topup = None if topup_id is None else await self.repo.lock(tx, topup_id)
                own = (
                    topup
                    if topup is not None and topup.user_id == user_id and topup.method == STARS
                    else None
                )
                fits = own is not None and currency == XTR and str(stars) == own.pay_amount
                if own is not None and fits and await self.repo.mark_paid(tx, own.id, charge_id):
                    await self.repo.insert_charge(
                        tx, charge_id, user_id, own.id, stars, currency, payload, CREDITED, None
                    )
                    bonus = await self._credit_in(tx, own)
                    credited = own.amount
                else:
                    # Not a Stars payment: refundStarPayment cannot return it.
                    refundable = currency == XTR
                    await self.repo.insert_charge(
                        tx,
                        charge_id,
                        user_id,
                        None if own is None else own.id,
                        stars,
                        currency,
                        payload,
                        REFUND_DUE if refundable else REFUND_FAILED,
                        DUPLICATE if fits else UNMATCHED,
                        None if refundable else f"not a Stars payment ({currency})",
                    )
            charge = await self.repo.charge_in(tx, charge_id)
        assert charge is not None
        if known is None:
            await self._announce_bonus(bonus, user_id)
            if charge.status == REFUND_DUE:
                charge = await self._refund_charge(charge)
            elif charge.status == REFUND_FAILED:
                await self._alert_refund(charge)
        balance = await self.ledger.balance(user_id)
        return StarsPayment(charge, credited, balance, replay=known is not None)

    async def _refund_charge(self, charge: StarCharge) -> StarCharge:
        """Ask Telegram to return an uncredited charge; record and report what it said."""
        if self.stars is None:
            answer, detail = RefundAnswer.NO_ANSWER, "no Telegram gateway"
        else:
            answer, detail = await self.stars.refund(charge.user_id, charge.charge_id)
        if answer in (RefundAnswer.REFUNDED, RefundAnswer.ALREADY_REFUNDED):
            status, error = REFUNDED, None
        elif answer is RefundAnswer.REFUSED:
            status, error = REFUND_FAILED, detail[:200]
        else:
            status, error = REFUND_DUE, detail[:200]
        log.info("Stars charge %s: refund %s (%s)", charge.charge_id, answer.value, detail)
        async with self.db.transaction() as tx:
            changed = await self.repo.settle_charge(
                tx, charge.charge_id, status, error, (REFUND_DUE, REFUND_FAILED)
            )
            fresh = await self.repo.charge_in(tx, charge.charge_id)
        assert fresh is not None
        if changed or status == REFUND_DUE:
            await self._alert_refund(fresh)
        return fresh

    async def _alert_refund(self, charge: StarCharge) -> None:
        """Tell the admins how an uncredited charge stands (a pending one at most hourly)."""
        if self.notifier is None:
            return
        why = (
            lazy("it paid top-up #{topup} a second time", topup=charge.topup_id)
            if charge.reason == DUPLICATE
            else lazy("it matches no pending top-up (payload {payload})", payload=charge.payload)
        )
        if charge.status == REFUNDED:
            text = lazy(
                "Stars payment {charge} from user {user} ({stars} ⭐) was not credited: {why}. "
                "It was refunded automatically.",
                charge=charge.charge_id,
                user=charge.user_id,
                stars=charge.stars,
                why=why,
            )
        elif charge.status == REFUND_FAILED:
            text = lazy(
                "Stars payment {charge} from user {user} ({stars} ⭐) was not credited: {why}. "
                "Telegram refused its refund ({error}); refund it with /refundstars {charge}.",
                charge=charge.charge_id,
                user=charge.user_id,
                stars=charge.stars,
                why=why,
                error=charge.error or "",
            )
        else:
            if not await self.kv.claim_every(f"alert:stars-due:{charge.charge_id}", 3600):
                return
            text = lazy(
                "Stars payment {charge} from user {user} ({stars} ⭐) was not credited: {why}. "
                "Telegram did not answer its refund ({error}); it is retried every few "
                "minutes, or use /refundstars {charge}.",
                charge=charge.charge_id,
                user=charge.user_id,
                stars=charge.stars,
                why=why,
                error=charge.error or "",
            )
        await self.notifier.alert_admins(text)

    async def retry_charge_refunds(self) -> None:
        """The job: refund again every uncredited charge whose refund got no answer."""
        for charge in await self.repo.charges_due(int(time.time()) - REFUND_RETRY_AFTER):
            fresh = await self._refund_charge(charge)
            if fresh.status == REFUNDED and self.notifier is not None:
                await self.notifier.payment_returned(fresh.user_id, fresh.stars)

    async def _refund_uncredited(self, admin_id: int, charge_id: str) -> StarCharge | None:
        """/refundstars for a charge that was never credited (its refund was refused or got
        no answer): ask Telegram again, touching no wallet. None for any other charge."""
        charge = await self.repo.charge(charge_id)
        if charge is None or charge.status == CREDITED:
            return None
        if charge.status == REFUNDED:
            return charge
        await self.audit.record(admin_id, "refundstars", charge_id, f"{charge.stars} XTR")
        return await self._refund_charge(charge)

    async def telegram_refunded(self, user_id: int, charge_id: str, stars: int) -> TelegramRefund:
        """Telegram's refunded_payment: the stars went back to the payer. Take back what the
        top-up credited, once per charge (in the schema), never below zero: what the balance
        no longer covers is the `shortfall` the admins are told about."""
        result: TelegramRefund | None = None
        async with self.db.transaction() as tx:
            if not await self.repo.record_star_refund(tx, charge_id, user_id, stars):
                return TelegramRefund(charge_id, user_id, stars, "replay")
            charge = await self.repo.charge_in(tx, charge_id)
            outcome = "unknown" if charge is None else "uncredited"
            if charge is not None and charge.status != CREDITED:
                await self.repo.settle_charge(
                    tx, charge_id, REFUNDED, None, (REFUND_DUE, REFUND_FAILED)
                )
            elif charge is not None:
                assert charge.topup_id is not None
                topup = await self._lock(tx, charge.topup_id)
                assert topup is not None
                outcome = "ours"  # unless still paid: /refundstars debited it before
                if topup.status == "paid":
                    debited, shortfall, bonus = await self._debit_refunded(tx, topup)
                    await self.repo.set_star_refund_debit(tx, charge_id, debited, shortfall)
                    balance = await self.repo.balance_in(tx, topup.user_id)
                    result = TelegramRefund(
                        charge_id,
                        topup.user_id,
                        stars,
                        "debited",
                        topup.amount,
                        debited,
                        shortfall,
                        balance,
                        *bonus,
                    )
        if charge is None:
            log.error("Telegram refunded Stars charge %s, which we have no record of", charge_id)
            await self._alert_admins(
                lazy(
                    "Telegram refunded Stars payment {charge} of user {user} ({stars} ⭐), "
                    "which we have no record of. Check it.",
                    charge=charge_id,
                    user=user_id,
                    stars=stars,
                )
            )
        if result is None:
            return TelegramRefund(charge_id, user_id, stars, outcome)
        if result.shortfall:
            text = lazy(
                "Telegram refunded Stars payment {charge} of user {user} ({stars} ⭐, a top-up "
                "of {amount}). The balance covered only {debited}: {shortfall} could not be "
                "taken back.",
                charge=charge_id,
                user=result.user_id,
                stars=stars,
                amount=self.currency.format(result.amount),
                debited=self.currency.format(result.debited),
                shortfall=self.currency.format(result.shortfall),
            )
        else:
            text = lazy(
                "Telegram refunded Stars payment {charge} of user {user} ({stars} ⭐): the "
                "top-up of {amount} was taken back from the wallet.",
                charge=charge_id,
                user=result.user_id,
                stars=stars,
                amount=self.currency.format(result.amount),
            )
        if result.bonus_taken:
            text = lazy(
                "{refund}\nThe referral bonus of {amount} was taken back from user {user}.",
                refund=text,
                amount=self.currency.format(result.bonus_taken),
                user=result.inviter_id,
            )
        if result.bonus_kept:
            text = lazy(
                "{refund}\nUser {user} had spent the referral bonus of {amount} already; it "
                "stays with them.",
                refund=text,
                amount=self.currency.format(result.bonus_kept),
                user=result.inviter_id,
            )
        await self._alert_admins(text)
        return result

    async def _debit_refunded(
        self, tx: Tx, topup: Topup
    ) -> tuple[int, int, tuple[int | None, int, int]]:
        """Take back a refunded top-up's credit (what the balance covers) and its referral
        bonus; mark it refunded. Returns (debited, shortfall, (inviter, bonus taken, bonus
        kept))."""
        debited = min(topup.amount, await self.repo.balance_in(tx, topup.user_id))
        if debited > 0:
            # One 'topup_refund' per top-up (the schema): a /refundstars that Telegram refused
            # left one, reversed by an adjustment; this debit is then an adjustment too.
            refunded_before = await self.repo.has_ledger(
                tx, topup.id, LedgerKind.TOPUP_REFUND.value
            )
            await self.ledger.apply(
                tx,
                topup.user_id,
                -debited,
                LedgerKind.ADJUSTMENT if refunded_before else LedgerKind.TOPUP_REFUND,
                "Stars refunded by Telegram",
                topup_id=topup.id,
            )
        await self.repo.mark_refunded(tx, topup.id)
        bonus = await self._take_back_bonus(tx, None, topup)
        return debited, topup.amount - debited, bonus

    async def _alert_admins(self, text: LazyText) -> None:
        if self.notifier is not None:
            await self.notifier.alert_admins(text)

    async def refund_stars(self, admin_id: int, charge_id: str) -> AdminStarsRefund:
        """/refundstars: give a customer's Stars payment back.

        A charge that was never credited is only asked for again (`_refund_uncredited`). A
        credited one runs in three steps: (1) debit the wallet and mark the top-up refunded
        in one transaction (`_begin_refund`), (2) ask Telegram, (3) if Telegram refuses,
        credit the debit back (`_undo_refund`). A lost answer keeps the debit, and asking
        again asks Telegram again: the customer never holds both the stars and the credit.
        """
        uncredited = await self._refund_uncredited(admin_id, charge_id)
        if uncredited is not None:
            return AdminStarsRefund(StarsRefundOutcome.UNCREDITED, charge_id, charge=uncredited)
        refund = await self._begin_refund(admin_id, charge_id)
        if self.stars is None:
            answer, detail = RefundAnswer.NO_ANSWER, "no Telegram gateway"
        else:
            answer, detail = await self.stars.refund(refund.topup.user_id, charge_id)
        if answer is RefundAnswer.ALREADY_REFUNDED:
            return AdminStarsRefund(StarsRefundOutcome.ALREADY_REFUNDED, charge_id, detail)
        if answer is RefundAnswer.REFUSED:
            await self._undo_refund(admin_id, refund, detail)
            return AdminStarsRefund(StarsRefundOutcome.REFUSED, charge_id, detail)
        if answer is RefundAnswer.NO_ANSWER:
            log.warning("refundStarPayment %s: %s", charge_id, detail)
            return AdminStarsRefund(StarsRefundOutcome.NO_ANSWER, charge_id, detail)
        if refund.amount == 0:
            return AdminStarsRefund(StarsRefundOutcome.DEBITED_BEFORE, charge_id, refund=refund)
        if self.notifier is not None:
            await self.notifier.stars_refunded(
                refund.topup.user_id, refund.amount, refund.topup.pay_amount, refund.balance
            )
        return AdminStarsRefund(StarsRefundOutcome.REFUNDED, charge_id, refund=refund)

    async def _begin_refund(self, admin_id: int, charge_id: str) -> StarsRefund:
        """Step 1 of /refundstars: debit the wallet and mark the top-up refunded, in one
        transaction, before Telegram is asked. If Telegram then refuses, `_undo_refund` puts
        the money back; if Telegram's answer is lost, the debit stays and a retry asks again.
        Either way no money is created: the user never holds both the stars and the credit.
        """
        async with self.db.transaction() as tx:
            topup = await self._lock(tx, charge_id=charge_id)
            if topup is None or topup.method != STARS:
                raise NotFound(_("No Stars payment with that charge id."))
            if topup.status == "refunded":
                # Our side is done; the caller asks Telegram again (it says if it was refunded).
                balance = await self.ledger.balance(topup.user_id)
                return StarsRefund(topup, 0, balance)
            if topup.status != "paid":
                raise InvalidInput(_("That payment was never credited."))
            if await self.repo.has_ledger(tx, topup.id, LedgerKind.TOPUP_REFUND.value):
                raise InvalidInput(
                    _("Telegram refused a refund of this payment before; it was not retried.")
                )
            if not await self.ledger.apply(
                tx,
                topup.user_id,
                -topup.amount,
                LedgerKind.TOPUP_REFUND,
                "Stars refund",
                actor_id=admin_id,
                topup_id=topup.id,
            ):
                raise InsufficientFunds(
                    _(
                        "The user's balance no longer covers {amount}; nothing was refunded."
                    ).format(amount=self.currency.format(topup.amount))
                )
            await self.repo.mark_refunded(tx, topup.id)
            inviter_id, taken, kept = await self._take_back_bonus(tx, admin_id, topup)
            await self.audit.write(
                tx, admin_id, "refundstars", charge_id, self.currency.format(topup.amount)
            )
        balance = await self.ledger.balance(topup.user_id)
        return StarsRefund(topup, topup.amount, balance, inviter_id, taken, kept)

    async def _take_back_bonus(
        self, tx: Tx, admin_id: int | None, topup: Topup
    ) -> tuple[int | None, int, int]:
        """A refunded top-up earns no referral bonus: take it back from the inviter, unless
        they spent it already (a debit never goes below zero; the admin is told what stayed).
        Returns (inviter, taken, kept)."""
        bonus = await self.repo.referral_bonus(tx, topup.id)
        if bonus is None:
            return None, 0, 0
        inviter_id, amount = bonus
        taken = await self.ledger.apply(
            tx,
            inviter_id,
            -amount,
            LedgerKind.ADJUSTMENT,
            f"referral bonus taken back: top-up of user {topup.user_id} refunded",
            actor_id=admin_id,
            topup_id=topup.id,
        )
        return (inviter_id, amount, 0) if taken else (inviter_id, 0, amount)

    async def _undo_refund(self, admin_id: int, refund: StarsRefund, error: str) -> None:
        """Telegram refused the refund: credit the debit back (an 'adjustment') and reopen."""
        async with self.db.transaction() as tx:
            if refund.amount > 0:
                await self.ledger.apply(
                    tx,
                    refund.topup.user_id,
                    refund.amount,
                    LedgerKind.ADJUSTMENT,
                    "Stars refund refused by Telegram",
                    actor_id=admin_id,
                    topup_id=refund.topup.id,
                )
            if refund.inviter_id is not None and refund.bonus_taken > 0:
                await self.ledger.apply(
                    tx,
                    refund.inviter_id,
                    refund.bonus_taken,
                    LedgerKind.ADJUSTMENT,
                    "referral bonus restored: Stars refund refused by Telegram",
                    actor_id=admin_id,
                    topup_id=refund.topup.id,
                )
            await self.repo.unmark_refunded(tx, refund.topup.id)
            await self.audit.write(
                tx, admin_id, "refundstars_failed", refund.topup.charge_id or "", error[:200]
            )

    # -- referrals ---------------------------------------------------------------------------

    async def link_referrer(self, user_id: int, inviter_id: int) -> bool:
        """Link a just-registered user to the inviter; False (nothing changes) otherwise."""
        since = int(time.time()) - REFERRAL_WINDOW
        async with self.db.transaction() as tx:
            return await self.repo.link_referrer(tx, user_id, inviter_id, since)

    async def referral_stats(self, user_id: int) -> tuple[int, int]:
        """(users invited, bonus earned in minor units)."""
        return await self.repo.referral_stats(user_id)

    async def _referral_bonus(self, tx: Tx, topup: Topup) -> tuple[int, int, int] | None:
        """The inviter's share of a top-up (rounded down), once per top-up; in `tx`."""
        percent = self.settings.referral_percent
        if percent <= 0:
            return None
        inviter_id = await self.repo.referrer_of(tx, topup.user_id)
        if inviter_id is None:
            return None
        bonus = int(
            (Decimal(topup.amount) * percent / 100).to_integral_value(rounding=ROUND_FLOOR)
        )
        if bonus <= 0 or await self.repo.has_ledger(tx, topup.id, LedgerKind.REFERRAL.value):
            return None
        await self.ledger.apply(
            tx,
            inviter_id,
            bonus,
            LedgerKind.REFERRAL,
            f"referral bonus for user {topup.user_id}",
            topup_id=topup.id,
        )
        return inviter_id, bonus, await self.repo.balance_in(tx, inviter_id)
