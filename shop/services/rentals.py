"""Rentals: SMSPool numbers by the day, paid from the wallet with the money rules of numbers.

Buying: charge the wallet (a `rental` ledger row) and create the rental in `buying` in one
transaction, then call purchase/rental once. A refusal that proves nothing was bought refunds at
once; any other answer is "outcome unknown": refunded, flagged, alerted, never retried. A
rental left in `buying` (a crash) is settled the same way at start and by the sweeper.

Extending: charge (`rental_extend`, one per extension) and create the extension `pending` in one
transaction, then rental/extend once; a refusal refunds that extension at once (an extension's
own `rental_refund` row), no clear answer refunds and flags it.

Refunding: allowed within REFUND_WINDOW_SECONDS of the purchase and before the first message
(the doc's rule). SMSPool's refund first; only its success (or "already refunded") refunds the
wallet: everything the customer paid for the rental, net of what was refunded before, as one
`rental_refund` row the schema allows once per rental.

Watching: each live rental is polled (status, then messages, as the doc asks) at least once
every `poll_seconds`; new messages are stored once (deduplicated on (timestamp, sender, text)
in the database) and forwarded in order, each marked forwarded only after it went out, so a
crash in between sends it again at most once. A reminder goes out the day before the end, and
a last message once it has ended.

Prices: `pricing[days]` USD x SMSPOOL_RATE x (1 + markup), rounded up to the minor unit; the
markup is the one `/setmarkup` sets for SMSPool (provider `smspool`), else the global one. A
single-service line (US extendable rentals, `service_id`) costs half, as the doc says.

One service: the confirm screen of a US extendable rental offers "One service (discount)". The
services offered are the catalog's for the SMSPool route (their route codes are SMSPool's
service IDs, from service/retrieve_all), most ordered first, or found by a typed name
(`shop.search`); handlers carry the catalog's service id and the service resolves it to the
SMSPool ID sent as `service_id` (and stored on the rental).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from shop.errors import AppError, InsufficientFunds, InvalidState, NotFound, TryAgainLater
from shop.i18n import LazyText, _, lazy, lazy_date
from shop.models import (
    LedgerKind,
    NewExtension,
    NewRental,
    Rental,
    RentalExtension,
    RentalMessage,
    RentalState,
    RentalTotals,
    Service,
)
from shop.money import Currency
from shop.ports import AuditRepository, Database, KeyValueRepository, LedgerRepository, Tx
from shop.providers.base import (
    ExtendOutcomeUnknown,
    Priority,
    ProviderError,
    PurchaseOutcomeUnknown,
    RefundOutcomeUnknown,
    RentalAlreadyRefunded,
    RentalRefundDenied,
    UnknownRental,
    UpstreamNoBalance,
)
from shop.providers.smspool_rentals import (
    ExtendResult,
    RefundResult,
    RentalOffer,
    RentalPoll,
    RentalPurchase,
)
from shop.search import SearchIndex
from shop.services.pricing import Pricing

log = logging.getLogger(__name__)

PROVIDER = "smspool"  # the markup key (/setmarkup smspool ...) and the account name
REFUND_WINDOW_SECONDS = 12 * 3600  # the doc: "after 12 hours or after receiving one message"
REMIND_BEFORE_SECONDS = 86400  # the reminder: the day before the end
OFFERS_TTL_SECONDS = 60.0  # retrieve_all is cached this long (a cache: may be dropped)
ALERT_EVERY_SECONDS = 600
FORWARD_LEASE = 30  # seconds a sender holds a message; after a crash it is sent again then
SINGLE_SERVICE_FACTOR = Decimal("0.5")  # the doc: "get 50% off"
SINGLE_SERVICE_COUNTRY = "united states"  # the doc: "Only works for US extendable rentals"
SINGLE_SERVICE_ROUTE = "smspool"  # the catalog route whose service codes are SMSPool's IDs
SERVICES_TTL_SECONDS = 300.0  # the search index of those services (a cache: may be dropped)


class RentalsClient(Protocol):
    """What the service needs from SMSPool's rental endpoints (`SMSPoolRentals`)."""

    async def offers(self, extendable: bool, priority: Priority = ...) -> list[RentalOffer]: ...
    async def purchase(
        self, rental_id: str, days: int, service_id: str | None = None
    ) -> RentalPurchase: ...
    async def poll(self, rental_code: str, priority: Priority = ...) -> RentalPoll: ...
    async def extend(self, rental_code: str, days: int) -> ExtendResult: ...
    async def refund(self, rental_code: str) -> RefundResult: ...


class RentalRepository(Protocol):
    """`storage.rentals.RentalRepo`, as the service uses it."""

    async def create(self, tx: Tx, rental: NewRental, now: int) -> int | None: ...
    async def get(self, rental_id: int) -> Rental | None: ...
    async def get_in(self, tx: Tx, rental_id: int) -> Rental | None: ...
    async def for_user(self, user_id: int, limit: int, offset: int = 0) -> list[Rental]: ...
    async def count_for_user(self, user_id: int) -> int: ...
    async def transition(
        self,
        tx: Tx,
        rental_id: int,
        from_states: list[RentalState],
        to: RentalState,
        **fields: object,
    ) -> bool: ...
    async def update(self, rental_id: int, **fields: object) -> None: ...
    async def claim_once(self, rental_id: int, column: str, now: int) -> bool: ...
    async def claim_due(self, now: int, limit: int, next_at: int) -> list[Rental]: ...
    async def live_count(self) -> int: ...
    async def buying_before(self, before: int) -> list[int]: ...
    async def net_paid(self, tx: Tx, rental_id: int) -> int: ...
    async def whole_refund_exists(self, tx: Tx, rental_id: int) -> bool: ...
    async def add_messages(
        self, rental_id: int, messages: list[tuple[str, str, str | None, str]], now: int
    ) -> int: ...
    async def unforwarded(self, rental_id: int) -> list[RentalMessage]: ...
    async def with_unforwarded(self) -> list[int]: ...
    async def mark_forwarded(self, message_id: int, now: int) -> None: ...
    async def claim_message(self, message_id: int, now: int, lease: int) -> bool: ...
    async def release_message(self, message_id: int) -> None: ...
    async def messages(
        self, rental_id: int, limit: int, offset: int = 0
    ) -> list[RentalMessage]: ...
    async def create_extension(self, tx: Tx, extension: NewExtension, now: int) -> int | None: ...
    async def settle_extension(
        self, tx: Tx, extension_id: int, to: str, error: str = ""
    ) -> bool: ...
    async def extensions(self, rental_id: int) -> list[RentalExtension]: ...
    async def extension_in(self, tx: Tx, extension_id: int) -> RentalExtension | None: ...
    async def extension_refunded(self, tx: Tx, extension_id: int) -> bool: ...
    async def update_in(self, tx: Tx, rental_id: int, **fields: object) -> None: ...
    async def next_seq(self, rental_id: int) -> int: ...
    async def pending_extensions_before(self, before: int) -> list[tuple[int, int]]: ...
    async def totals(self, since: int = 0) -> RentalTotals: ...


class RentalServiceCatalog(Protocol):
    """The catalog's services (`storage.catalog.CatalogRepo`), for the single-service choice."""

    async def count_services(self, routes: Sequence[str], query: str = "") -> int: ...
    async def services(
        self, routes: Sequence[str], query: str, limit: int, offset: int
    ) -> list[Service]: ...
    async def service(self, service_id: int) -> Service | None: ...
    async def upstream_service(self, route: str, service_id: int) -> str | None: ...


class RentalNotifier(Protocol):
    """How the service tells people about rentals (`handlers.notify.TelegramNotifier`)."""

    async def rental_message(self, rental: Rental, message: RentalMessage) -> bool:
        """Forward one SMS to the customer; False when it should be tried again later."""
        ...

    async def rental_reminder(self, rental: Rental) -> None: ...
    async def rental_ended(self, rental: Rental) -> None: ...
    async def rental_failed(self, rental: Rental, refunded: int) -> None:
        """A purchase settled in the background (unknown outcome): tell the customer."""
        ...

    async def rental_extension_failed(self, rental: Rental, days: int, refunded: int) -> None:
        """An extension settled in the background (unknown outcome): tell the customer."""
        ...

    async def alert_admins(self, text: str | LazyText) -> None: ...


# -- what handlers see ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RentalChoice:
    """One rental on sale, priced in the shop currency (days -> minor units)."""

    offer_id: str
    country: str
    region: str | None
    iso: str | None
    extendable: bool
    prices: dict[int, int]

    @property
    def single_service_allowed(self) -> bool:
        return self.extendable and self.country.strip().lower() == SINGLE_SERVICE_COUNTRY


@dataclass(frozen=True)
class RentQuote:
    """The confirm screen: what is bought, for how long, at what price; `token` makes the
    Confirm button buy at most once."""

    choice: RentalChoice
    days: int
    service: Service | None  # a single-service line: the catalog's service...
    service_code: str | None  # ...and its SMSPool service ID (`service_id`)
    price: int
    token: str


class RentalPriceChanged(AppError):
    """The price rose since the confirm screen: nothing was charged."""

    user_message = "The price has changed. Please confirm the new price."

    def __init__(self, quote: RentQuote) -> None:
        super().__init__()
        self.quote = quote


class RentalFailed(AppError):
    """The purchase failed; `refunded` went back to the wallet."""

    def __init__(self, cause: ProviderError, refunded: int) -> None:
        super().__init__(cause.user_message)
        self.cause = cause
        self.refunded = refunded


class AlreadyRenting(InvalidState):
    user_message = "This rental is already being processed."


@dataclass(frozen=True)
class Extended:
    rental: Rental
    days: int
    price: int


@dataclass(frozen=True)
class Refunded:
    rental: Rental
    refunded: int


def message_digest(timestamp: str, sender: str | None, text: str) -> str:
    """The key of a rental message: SHA-256 of (timestamp, sender, text)."""
    raw = "\x1f".join((timestamp, sender or "", text)).encode()
    return hashlib.sha256(raw).hexdigest()


def poll_capacity(per_minute: int, share: float, interval: float) -> int:
    """How many live rentals `share` of a budget of `per_minute` requests polls every
    `interval` seconds (two requests a poll: status, then messages)."""
    return int(per_minute * share * interval / 60 / 2)


class RentalService:
    def __init__(
        self,
        db: Database,
        repo: RentalRepository,
        ledger: LedgerRepository,
        kv: KeyValueRepository,
        audit: AuditRepository,
        client: RentalsClient,
        pricing: Pricing,
        currency: Currency,
        rate: Decimal,
        notifier: RentalNotifier,
        poll_seconds: float = 60.0,
        purchase_grace: int = 90,
        catalog: RentalServiceCatalog | None = None,
    ) -> None:
        self.db = db
        self.repo = repo
        self.ledger = ledger
        self.kv = kv
        self.audit = audit
        self.client = client
        self.pricing = pricing
        self.currency = currency
        self.rate = rate
        self.notifier = notifier
        self.poll_seconds = poll_seconds
        self.purchase_grace = purchase_grace
        self.catalog = catalog
        self._offers: dict[bool, tuple[float, list[RentalOffer]]] = {}
        self._index: tuple[float, SearchIndex] | None = None

    # -- catalogue -------------------------------------------------------------------------------

    async def _offer_list(self, extendable: bool) -> list[RentalOffer]:
        cached = self._offers.get(extendable)
        if cached is not None and time.monotonic() - cached[0] < OFFERS_TTL_SECONDS:
            return cached[1]
        offers = await self.client.offers(extendable)
        self._offers[extendable] = (time.monotonic(), offers)
        return offers

    async def _markup(self) -> Decimal:
        return (await self.pricing.table()).markup(PROVIDER, 0)

    def _retail(self, usd: Decimal, markup: Decimal, single: bool) -> int:
        if single:
            usd = usd * SINGLE_SERVICE_FACTOR
        return self.currency.convert_up(usd, self.rate, markup)

    def _cost(self, usd: Decimal, single: bool) -> tuple[Decimal, int]:
        if single:
            usd = usd * SINGLE_SERVICE_FACTOR
        return usd, self.currency.convert_up(usd, self.rate)

    async def choices(self, extendable: bool) -> list[RentalChoice]:
        """The rentals on sale of one kind, priced, by country name."""
        markup = await self._markup()
        offers = await self._offer_list(extendable)
        return sorted(
            (
                RentalChoice(
                    offer.id,
                    offer.country,
                    offer.region,
                    offer.iso,
                    offer.extendable,
                    {
                        days: self._retail(usd, markup, False)
                        for days, usd in offer.pricing.items()
                    },
                )
                for offer in offers
            ),
            key=lambda choice: choice.country.lower(),
        )

    async def choice(self, extendable: bool, offer_id: str) -> RentalChoice:
        for choice in await self.choices(extendable):
            if choice.offer_id == offer_id:
                return choice
        raise NotFound(_("This rental is not offered any more."))

    async def _raw_offer(self, extendable: bool, offer_id: str) -> RentalOffer:
        for offer in await self._offer_list(extendable):
            if offer.id == offer_id:
                return offer
        raise NotFound(_("This rental is not offered any more."))

    async def quote(
        self, extendable: bool, offer_id: str, days: int, service_id: int = 0
    ) -> RentQuote:
        """The confirm screen's figures; `service_id` (the catalog's; 0: any service) asks
        for a single-service line. Raises NotFound / InvalidState for a bad choice."""
        offer = await self._raw_offer(extendable, offer_id)
        if days not in offer.pricing:
            raise InvalidState(_("This rental period is not available. Please pick another one."))
        choice = await self.choice(extendable, offer_id)
        service, code = None, None
        if service_id:
            if not choice.single_service_allowed:
                raise InvalidState(
                    _("A single-service line is offered only on US extendable rentals.")
                )
            service, code = await self.single_service(service_id)
        price = self._retail(offer.pricing[days], await self._markup(), service is not None)
        return RentQuote(choice, days, service, code, price, secrets.token_hex(4))

    # -- one service (US extendable rentals) -----------------------------------------------------

    def _services_catalog(self) -> RentalServiceCatalog:
        if self.catalog is None:
            raise NotFound(_("Single-service rentals are not available right now."))
        return self.catalog

    async def single_service_offer(
        self, extendable: bool, offer_id: str, days: int
    ) -> RentalChoice:
        """The rental a single-service line is being picked for; InvalidState unless it is a
        US extendable rental on sale for `days`."""
        quote = await self.quote(extendable, offer_id, days)
        if not quote.choice.single_service_allowed:
            raise InvalidState(
                _("A single-service line is offered only on US extendable rentals.")
            )
        self._services_catalog()
        return quote.choice

    async def single_service(self, service_id: int) -> tuple[Service, str]:
        """A catalog service SMSPool sells, and its SMSPool service ID; NotFound otherwise."""
        catalog = self._services_catalog()
        service = await catalog.service(service_id)
        code = await catalog.upstream_service(SINGLE_SERVICE_ROUTE, service_id)
        if service is None or code is None:
            raise NotFound(_("This service cannot be picked for a rental."))
        return service, code

    async def single_services(self, page: int, per_page: int) -> tuple[list[Service], int, int]:
        """(services, page, pages) a single-service line may name, most ordered first, then
        by name; `page` is clamped."""
        catalog = self._services_catalog()
        routes = [SINGLE_SERVICE_ROUTE]
        total = await catalog.count_services(routes)
        pages = max(1, -(-total // per_page))
        page = min(max(page, 0), pages - 1)
        return await catalog.services(routes, "", per_page, page * per_page), page, pages

    async def find_single_services(self, query: str, limit: int = 8) -> list[Service]:
        """The services a typed name may mean, best first (typos and aliases forgiven)."""
        catalog = self._services_catalog()
        cached = self._index
        if cached is None or time.monotonic() - cached[0] >= SERVICES_TTL_SECONDS:
            routes = [SINGLE_SERVICE_ROUTE]
            everything = await catalog.services(
                routes, "", await catalog.count_services(routes), 0
            )
            cached = (time.monotonic(), SearchIndex(((s.id, s.name) for s in everything), ()))
            self._index = cached
        found = cached[1].services(query, limit)
        services = [await catalog.service(match.id) for match in found]
        return [service for service in services if service is not None]

    # -- buying ----------------------------------------------------------------------------------

    async def rent(
        self,
        user_id: int,
        extendable: bool,
        offer_id: str,
        days: int,
        service_id: int,
        shown_price: int,
        token: str,
        chat_id: int | None = None,
    ) -> Rental:
        """Charge once, buy once: `charge`, then `buy`."""
        rental_id = await self.charge(
            user_id, extendable, offer_id, days, service_id, shown_price, token, chat_id
        )
        return await self.buy(rental_id)

    async def charge(
        self,
        user_id: int,
        extendable: bool,
        offer_id: str,
        days: int,
        service_id: int,
        shown_price: int,
        token: str,
        chat_id: int | None = None,
    ) -> int:
        """Charge the wallet and create the rental in `buying`, in one transaction; returns
        its id (then `buy` it). Raises RentalPriceChanged (nothing charged) when the price
        rose above `shown_price`, AlreadyRenting for a second tap on the same Confirm,
        InsufficientFunds, NotFound / InvalidState for a choice not on sale."""
        offer = await self._raw_offer(extendable, offer_id)
        quote = await self.quote(extendable, offer_id, days, service_id)
        if quote.price > shown_price:
            raise RentalPriceChanged(quote)
        usd, cost = self._cost(offer.pricing[days], quote.service_code is not None)
        now = int(time.time())
        async with self.db.transaction() as tx:
            rental_id = await self.repo.create(
                tx,
                NewRental(
                    user_id=user_id,
                    request_key=f"{user_id}:{token}",
                    offer_id=offer.id,
                    country=offer.country,
                    extendable=offer.extendable,
                    service_id=quote.service_code,
                    days=days,
                    price=quote.price,
                    upstream_cost=usd,
                    cost=cost,
                    pricing=offer.pricing,
                    chat_id=chat_id,
                ),
                now,
            )
            if rental_id is None:
                raise AlreadyRenting()
            if not await self.ledger.apply(
                tx,
                user_id,
                -quote.price,
                LedgerKind.RENTAL,
                "number rental",
                rental_id=rental_id,
            ):
                raise InsufficientFunds()
        return rental_id

    async def buy(self, rental_id: int) -> Rental:
        """purchase/rental, once, for a rental `charge` left in `buying`. Raises RentalFailed
        (refunded) when SMSPool sold nothing or its answer proved nothing."""
        pending = await self.repo.get(rental_id)
        if pending is None or pending.state is not RentalState.BUYING:
            raise AlreadyRenting()
        days, single_service, now = pending.days, pending.service_id, pending.created_at
        try:
            bought = await self.client.purchase(pending.offer_id, days, single_service)
        except PurchaseOutcomeUnknown as exc:
            refunded = await self._fail(rental_id, exc, flag=True)
            await self._alert(
                f"rental-unknown:{rental_id}",
                lazy(
                    "Rental #{rental_id}: purchase/rental on SMSPool did not get a clear answer. "
                    "The customer was refunded; check SMSPool for a rental bought at {time}.",
                    rental_id=rental_id,
                    time=lazy_date(now),
                ),
            )
            raise RentalFailed(exc, refunded) from None
        except ProviderError as exc:
            refunded = await self._fail(rental_id, exc, flag=False)
            if isinstance(exc, UpstreamNoBalance):
                await self._alert(
                    "rental-nobalance",
                    lazy(
                        "SMSPool: the account balance is too low for rentals. Customers "
                        "cannot rent until it is topped up."
                    ),
                )
            raise RentalFailed(exc, refunded) from None
        except Exception as exc:
            log.exception("Rental %s: the purchase failed unexpectedly", rental_id)
            refunded = await self._fail(rental_id, exc, flag=True)
            await self._alert(
                f"rental-unknown:{rental_id}",
                lazy(
                    "Rental #{rental_id}: the purchase failed with an unexpected error "
                    "({error}). The customer was refunded; check SMSPool for a rental bought "
                    "at {time}.",
                    rental_id=rental_id,
                    error=type(exc).__name__,
                    time=lazy_date(now),
                ),
            )
            raise RentalFailed(PurchaseOutcomeUnknown(type(exc).__name__), refunded) from None
        expires = int(bought.expiry.timestamp()) if bought.expiry else now + days * 86400
        async with self.db.transaction() as tx:
            issued = await self.repo.transition(
                tx,
                rental_id,
                [RentalState.BUYING],
                RentalState.ACTIVE,
                rental_code=bought.rental_code,
                phone=bought.phone,
                days=bought.days,
                expires_at=expires,
                next_poll_at=int(time.time() + self.poll_seconds),
            )
        if not issued:
            # Settled meanwhile (the sweeper): the customer has their money back, so the
            # rental must not stay bought upstream.
            await self._lost_rental(rental_id, bought)
            raise RentalFailed(PurchaseOutcomeUnknown("rental closed during purchase"), 0)
        rental = await self.repo.get(rental_id)
        assert rental is not None
        log.info("Rental %s: number rented for %s days", rental_id, days)
        return rental

    async def _lost_rental(self, rental_id: int, bought: RentalPurchase) -> None:
        await self.repo.update(rental_id, rental_code=bought.rental_code, phone=bought.phone)
        try:
            await self.client.refund(bought.rental_code)
            note = "refunded upstream"
        except (RentalAlreadyRefunded, UnknownRental):
            note = "refunded upstream"
        except ProviderError as exc:
            note = f"refund upstream failed: {type(exc).__name__}"
            await self.repo.update(rental_id, needs_attention=1)
        await self._alert(
            f"rental-lost:{rental_id}",
            lazy(
                "Rental #{rental_id}: SMSPool rented {code} after the rental had been settled "
                "as failed ({note}).",
                rental_id=rental_id,
                code=bought.rental_code,
                note=note,
            ),
        )

    async def _fail(self, rental_id: int, exc: BaseException, flag: bool) -> int:
        """A rental still `buying` becomes `failed` and is refunded in full, in one
        transaction; returns what was refunded (0 if someone else settled it)."""
        log.warning("Rental %s failed: %s", rental_id, exc)
        async with self.db.transaction() as tx:
            if not await self.repo.transition(
                tx,
                rental_id,
                [RentalState.BUYING],
                RentalState.FAILED,
                error=type(exc).__name__,
                needs_attention=int(flag),
                ended_at=int(time.time()),
            ):
                return 0
            return await self._refund_whole(tx, rental_id, "rental purchase failed")

    async def _refund_whole(self, tx: Tx, rental_id: int, reason: str) -> int:
        """Give back everything paid for the rental, net of earlier refunds; once."""
        if await self.repo.whole_refund_exists(tx, rental_id):
            return 0
        rental = await self.repo.get_in(tx, rental_id)
        assert rental is not None
        amount = await self.repo.net_paid(tx, rental_id)
        if amount <= 0:
            return 0
        await self.ledger.apply(
            tx, rental.user_id, amount, LedgerKind.RENTAL_REFUND, reason, rental_id=rental_id
        )
        return amount

    async def settle_stuck(self, before: int | None = None) -> int:
        """Rentals left in `buying` (a crash, a stuck request) before `before` (default: the
        purchase grace ago): outcome unknown, so refund, flag, alert, tell the customer.
        Extensions left `pending` the same. Returns how many were settled."""
        cutoff = before if before is not None else int(time.time()) - self.purchase_grace
        settled = 0
        for rental_id in await self.repo.buying_before(cutoff):
            refunded = await self._fail(rental_id, PurchaseOutcomeUnknown("interrupted"), True)
            if not refunded:
                continue
            settled += 1
            await self._alert(
                f"rental-unknown:{rental_id}",
                lazy(
                    "Rental #{rental_id}: the bot stopped (or the request got stuck) during "
                    "purchase/rental. The customer was refunded; check SMSPool for this rental.",
                    rental_id=rental_id,
                ),
            )
            rental = await self.repo.get(rental_id)
            if rental is not None:
                await self.notifier.rental_failed(rental, refunded)
        for extension_id, rental_id in await self.repo.pending_extensions_before(cutoff):
            settled += await self._settle_interrupted_extension(extension_id, rental_id)
        return settled

    async def recover(self, *, alone: bool = True) -> None:
        """At start: settle purchases and extensions cut off by the stop (every one still
        `buying` or `pending`, as orders left `created` are: outcome unknown, refunded, flagged,
        alerted, the customer told), forward what was stored but not sent. Polling resumes by
        itself (the due times are in the database).

        With other instances alive (`alone` false) a `buying` row may be another instance's
        purchase in flight, so only those past the purchase grace are settled (as the sweeper
        does); the rest are left to their instance, or to the sweeper if it died."""
        await self.settle_stuck(int(time.time()) + 1 if alone else None)
        for rental_id in await self.repo.with_unforwarded():
            await self.forward_pending(rental_id)

    # -- extending -------------------------------------------------------------------------------

    async def extend_quote(self, user_id: int, rental_id: int, days: int) -> tuple[Rental, int]:
        """(rental, price) of extending by `days`, priced from the rental's own table."""
        rental = await self.get_for_user(user_id, rental_id)
        self._check_extendable(rental)
        usd = rental.pricing.get(days)
        if usd is None:
            raise InvalidState(_("This rental period is not available. Please pick another one."))
        return rental, self._retail(usd, await self._markup(), rental.service_id is not None)

    def _check_extendable(self, rental: Rental) -> None:
        if not rental.extendable:
            raise InvalidState(_("This rental cannot be extended."))
        if not rental.state.is_live or rental.rental_code is None:
            raise InvalidState(_("This rental has ended and can no longer be extended."))

    async def extend(
        self, user_id: int, rental_id: int, days: int, seq: int, shown_price: int
    ) -> Extended:
        """Charge the extension once (`seq` is the extension's number: a second tap on the
        same Confirm charges nothing), then rental/extend once; a refusal refunds at once."""
        rental, price = await self.extend_quote(user_id, rental_id, days)
        if price > shown_price:
            raise InvalidState(_("The price has changed. Please open Extend again."))
        usd, cost = self._cost(rental.pricing[days], rental.service_id is not None)
        assert rental.rental_code is not None
        now = int(time.time())
        async with self.db.transaction() as tx:
            extension_id = await self.repo.create_extension(
                tx,
                NewExtension(
                    rental_id=rental.id,
                    seq=seq,
                    days=days,
                    price=price,
                    upstream_cost=usd,
                    cost=cost,
                ),
                now,
            )
            if extension_id is None:
                raise InvalidState(_("This extension is already being processed."))
            if not await self.ledger.apply(
                tx,
                user_id,
                -price,
                LedgerKind.RENTAL_EXTEND,
                f"rental extension {seq}",
                rental_id=rental.id,
                rental_extension_id=extension_id,
            ):
                raise InsufficientFunds()
        try:
            await self.client.extend(rental.rental_code, days)
        except PurchaseOutcomeUnknown as exc:  # ExtendOutcomeUnknown
            await self._settle_extension(extension_id, rental.id, "unknown", exc)
            raise RentalFailed(exc, price) from None
        except ProviderError as exc:
            await self._settle_extension(extension_id, rental.id, "refused", exc)
            raise RentalFailed(exc, price) from None
        except Exception as exc:
            log.exception("Rental %s: the extension failed unexpectedly", rental.id)
            unknown = ExtendOutcomeUnknown(type(exc).__name__)
            await self._settle_extension(extension_id, rental.id, "unknown", unknown)
            raise RentalFailed(unknown, price) from None
        async with self.db.transaction() as tx:
            await self.repo.settle_extension(tx, extension_id, "done")
            current = await self.repo.get_in(tx, rental.id)
            assert current is not None
            await self.repo.transition(
                tx,
                rental.id,
                [RentalState.ACTIVE, RentalState.EXTENDED],
                RentalState.EXTENDED,
                days=current.days + days,
                expires_at=(current.expires_at or now) + days * 86400,
                reminded_at=None,
                next_poll_at=now,  # read the new expiry from SMSPool soon
            )
        extended = await self.repo.get(rental.id)
        assert extended is not None
        log.info("Rental %s: extended by %s days", rental.id, days)
        return Extended(extended, days, price)

    async def _settle_extension(
        self,
        extension_id: int,
        rental_id: int,
        to: str,
        exc: BaseException,
        alert: LazyText | None = None,
    ) -> int:
        """A pending extension refused (or of unknown outcome): refund that extension; an
        unknown one is flagged and alerted (`alert`, else the unclear answer's). Returns what
        was refunded (0 if it was settled before)."""
        refunded = 0
        async with self.db.transaction() as tx:
            if not await self.repo.settle_extension(tx, extension_id, to, type(exc).__name__):
                return 0
            rental = await self.repo.get_in(tx, rental_id)
            extension = await self.repo.extension_in(tx, extension_id)
            assert rental is not None and extension is not None
            if not await self.repo.extension_refunded(tx, extension_id):
                refunded = extension.price
                await self.ledger.apply(
                    tx,
                    rental.user_id,
                    extension.price,
                    LedgerKind.RENTAL_REFUND,
                    f"rental extension {to}",
                    rental_id=rental_id,
                    rental_extension_id=extension_id,
                )
            if to == "unknown":
                await self.repo.update_in(tx, rental_id, needs_attention=1)
        if to == "unknown":
            await self._alert(
                f"rental-extend-unknown:{extension_id}",
                alert
                or lazy(
                    "Rental #{rental_id}: rental/extend on SMSPool did not get a clear answer. "
                    "The customer was refunded; check whether SMSPool extended the rental.",
                    rental_id=rental_id,
                ),
            )
        return refunded

    async def _settle_interrupted_extension(self, extension_id: int, rental_id: int) -> bool:
        """An extension left `pending` (a crash, a stuck request): its outcome is unknown, so
        refund it, flag the rental, alert the owners and tell the customer, as interrupted
        number purchases are. False if it was settled meanwhile."""
        refunded = await self._settle_extension(
            extension_id,
            rental_id,
            "unknown",
            ExtendOutcomeUnknown("interrupted"),
            lazy(
                "Rental #{rental_id}: the bot stopped during rental/extend (or the request got "
                "stuck). The customer was refunded; check whether SMSPool extended the rental.",
                rental_id=rental_id,
            ),
        )
        if not refunded:
            return False
        rental = await self.repo.get(rental_id)
        async with self.db.transaction() as tx:
            extension = await self.repo.extension_in(tx, extension_id)
        if rental is not None and extension is not None:
            await self.notifier.rental_extension_failed(rental, extension.days, refunded)
        return True

    # -- refunding -------------------------------------------------------------------------------

    def refundable(self, rental: Rental, now: float | None = None) -> bool:
        """Whether the doc's rule still allows a refund: within 12 hours, no message yet."""
        moment = time.time() if now is None else now
        return (
            rental.state.is_live
            and rental.rental_code is not None
            and rental.messages == 0
            and moment - rental.created_at <= REFUND_WINDOW_SECONDS
        )

    async def refund(self, user_id: int, rental_id: int) -> Refunded:
        """The customer's Refund: SMSPool first, then the wallet, once."""
        rental = await self.get_for_user(user_id, rental_id)
        return await self._refund(rental, f"refunded by the customer {user_id}")

    async def admin_refund(self, rental_id: int, admin_id: int) -> Refunded:
        """An admin's refund: the same rules; the audit log records it."""
        rental = await self.repo.get(rental_id)
        if rental is None:
            raise NotFound(_("Rental #{id} does not exist.").format(id=rental_id))
        done = await self._refund(rental, f"refunded by admin {admin_id}", admin_id)
        return done

    async def _refund(self, rental: Rental, reason: str, admin_id: int | None = None) -> Refunded:
        if rental.state is RentalState.REFUNDED:
            raise InvalidState(_("This rental has already been refunded."))
        if rental.state is RentalState.BUYING:
            raise InvalidState(_("This rental is still being bought. Try again in a minute."))
        if not self.refundable(rental):
            raise RentalRefundDenied()
        assert rental.rental_code is not None
        try:
            await self.client.refund(rental.rental_code)
        except RentalAlreadyRefunded:
            log.info("Rental %s: SMSPool had refunded it already", rental.id)
        except RentalRefundDenied:
            raise
        except RefundOutcomeUnknown as exc:
            log.warning("Rental %s: refund answer unclear: %s", rental.id, exc)
            raise TryAgainLater(
                _("SMSPool did not confirm the refund. Nothing was refunded yet; try again.")
            ) from None
        except ProviderError as exc:
            log.info("Rental %s: refund failed: %s", rental.id, exc)
            raise TryAgainLater(
                _("The provider did not answer. Nothing was refunded; please try again.")
            ) from None
        async with self.db.transaction() as tx:
            moved = await self.repo.transition(
                tx,
                rental.id,
                [RentalState.ACTIVE, RentalState.EXTENDED, RentalState.EXPIRED],
                RentalState.REFUNDED,
                error=reason,
                ended_at=int(time.time()),
                ended_notified=1,
            )
            refunded = await self._refund_whole(tx, rental.id, reason) if moved else 0
            if moved and admin_id is not None:
                await self.audit.write(
                    tx, admin_id, "rental_refund", rental.id, f"{refunded} minor units"
                )
        if not moved:
            raise InvalidState(_("This rental has already been refunded."))
        done = await self.repo.get(rental.id)
        assert done is not None
        log.info("Rental %s: refunded %s", rental.id, refunded)
        return Refunded(done, refunded)

    # -- watching --------------------------------------------------------------------------------

    async def claim_due(self, limit: int) -> list[Rental]:
        """Live rentals due for a poll, each pushed one poll period ahead."""
        now = int(time.time())
        return await self.repo.claim_due(now, limit, now + max(1, int(self.poll_seconds)))

    async def poll(self, rental: Rental) -> int:
        """One poll (status, then messages): store and forward new messages, remind, end.
        Returns how many new messages were stored."""
        if rental.rental_code is None or not rental.state.is_live:
            return 0
        try:
            polled = await self.client.poll(rental.rental_code)
        except UnknownRental:
            log.warning("Rental %s: SMSPool no longer knows it", rental.id)
            await self._end(rental, "unknown upstream")
            return 0
        except ProviderError as exc:
            log.info("Rental %s: poll failed (%s); next period", rental.id, exc)
            return 0
        now = int(time.time())
        new = [
            (message_digest(m.timestamp, m.sender, m.text), m.timestamp, m.sender, m.text)
            for m in polled.messages
        ]
        added = await self.repo.add_messages(rental.id, new, now)
        await self.forward_pending(rental.id)  # new ones, and any left by a crash
        expiry = int(polled.status.expiry.timestamp())
        if expiry != rental.expires_at:
            await self.repo.update(rental.id, expires_at=expiry)
        if polled.status.ended():
            await self._end(rental, "expired")
        elif expiry - now <= REMIND_BEFORE_SECONDS and rental.reminded_at is None:
            if await self.repo.claim_once(rental.id, "reminded_at", now):
                current = await self.repo.get(rental.id)
                if current is not None:
                    await self.notifier.rental_reminder(current)
        return added

    async def _end(self, rental: Rental, reason: str) -> None:
        async with self.db.transaction() as tx:
            await self.repo.transition(
                tx,
                rental.id,
                [RentalState.ACTIVE, RentalState.EXTENDED],
                RentalState.EXPIRED,
                error=None if reason == "expired" else reason,
                ended_at=int(time.time()),
            )
        if await self.repo.claim_once(rental.id, "ended_notified", int(time.time())):
            ended = await self.repo.get(rental.id)
            if ended is not None:
                await self.notifier.rental_ended(ended)

    async def forward_pending(self, rental_id: int) -> None:
        """Send every stored, unforwarded message of a rental, oldest first; each is marked
        forwarded once it went out (a flood limit leaves it for the next poll)."""
        rental = await self.repo.get(rental_id)
        if rental is None:
            return
        for message in await self.repo.unforwarded(rental_id):
            if not await self.repo.claim_message(message.id, int(time.time()), FORWARD_LEASE):
                return  # being sent by another poll (or instance): keep the order
            if not await self.notifier.rental_message(rental, message):
                await self.repo.release_message(message.id)
                return
            await self.repo.mark_forwarded(message.id, int(time.time()))

    # -- reading ---------------------------------------------------------------------------------

    async def get(self, rental_id: int) -> Rental | None:
        return await self.repo.get(rental_id)

    async def get_for_user(self, user_id: int, rental_id: int) -> Rental:
        rental = await self.repo.get(rental_id)
        if rental is None or rental.user_id != user_id or rental.state is RentalState.FAILED:
            raise NotFound(_("Rental not found."))
        return rental

    async def page_for_user(
        self, user_id: int, page: int, per_page: int
    ) -> tuple[list[Rental], int, int]:
        """(rentals, page, pages), newest first; `page` is clamped."""
        total = await self.repo.count_for_user(user_id)
        pages = max(1, -(-total // per_page))
        page = min(max(page, 0), pages - 1)
        return await self.repo.for_user(user_id, per_page, page * per_page), page, pages

    async def messages_page(
        self, user_id: int, rental_id: int, page: int, per_page: int
    ) -> tuple[Rental, list[RentalMessage], int, int]:
        """(rental, messages newest first, page, pages) of one of the user's rentals."""
        rental = await self.get_for_user(user_id, rental_id)
        pages = max(1, -(-rental.messages // per_page))
        page = min(max(page, 0), pages - 1)
        return rental, await self.repo.messages(rental.id, per_page, page * per_page), page, pages

    async def extend_prices(self, user_id: int, rental_id: int) -> tuple[Rental, dict[int, int]]:
        """The periods a rental can be extended by, priced (its own table)."""
        rental = await self.get_for_user(user_id, rental_id)
        self._check_extendable(rental)
        markup = await self._markup()
        single = rental.service_id is not None
        return rental, {d: self._retail(usd, markup, single) for d, usd in rental.pricing.items()}

    async def attach_message(self, rental_id: int, chat_id: int, message_id: int) -> None:
        """The chat message that shows the rental (its card, with Extend and Refund)."""
        await self.repo.update(rental_id, chat_id=chat_id, message_id=message_id)

    async def sweep(self) -> None:
        """The sweeper job: settle purchases and extensions stuck past the grace period."""
        await self.settle_stuck()

    async def next_extension_seq(self, rental_id: int) -> int:
        return await self.repo.next_seq(rental_id)

    async def totals(self, since: int = 0) -> RentalTotals:
        return await self.repo.totals(since)

    async def live_count(self) -> int:
        return await self.repo.live_count()

    async def _alert(self, key: str, text: str | LazyText) -> None:
        if await self.kv.claim_every(f"alert:{key}", ALERT_EVERY_SECONDS):
            await self.notifier.alert_admins(text)
