"""Orders: quote, pay, buy upstream, watch for codes, and refund exactly once when no code came.

Every state change is one transaction with a conditional UPDATE, and a refund is a ledger row
that the schema allows once per order, so concurrent clicks, polls and jobs cannot pay twice.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from shop import metrics
from shop.errors import (
    AppError,
    BuyPaused,
    InsufficientFunds,
    InvalidState,
    NotFound,
    QuoteExpired,
    TryAgainLater,
)
from shop.i18n import LazyText, _, lazy
from shop.models import (
    ROUTE_REMOVED,
    USER_CANCEL,
    LedgerKind,
    Order,
    OrderCard,
    OrderCode,
    OrderStatus,
    Quote,
    RouteInfo,
)
from shop.ports import (
    Database,
    KeyValueRepository,
    LedgerRepository,
    OrderRepository,
    QuoteRepository,
    RoutingRepository,
    Tx,
)
from shop.providers.base import (
    Activation,
    ActivationStatus,
    EarlyCancelDenied,
    NoActivation,
    NoNumbers,
    ProviderError,
    PurchaseOutcomeUnknown,
    Route,
    StatusKind,
    UpstreamNoBalance,
)
from shop.services.catalog import CatalogService
from shop.services.leases import CLAIM_BATCH, Leases
from shop.services.notify import Notifier
from shop.services.pricing import Pricing

log = logging.getLogger(__name__)

WATCHED = (OrderStatus.NUMBER_ISSUED, OrderStatus.CODE_RECEIVED)
MAX_CLOSE_ATTEMPTS = 6
ALERT_EVERY_SECONDS = 600
ORPHANS_LISTED = 50  # orders named in one alert about a route no longer configured
CANCEL_WINDOW_SECONDS = 3600  # `cancel_limit` own cancels within this window pause buying
MAX_OPEN_QUOTES = 20  # a user's unconsumed quotes kept; a new one drops the oldest beyond


def purchase_grace(http_timeout: float) -> int:
    """Seconds an order may stay `created` before the sweeper settles it as "outcome unknown".

    Once charged, a purchase waits for its turn in the request budget (purchases go first)
    and sends one getNumber, bounded by the HTTP timeout on each of connect, write, read and
    pool. Four times the timeout plus 30 s (90 s with the default 15 s) is well past any
    purchase still alive; an order older than that was left by a crash or a stuck request.
    """
    return int(4 * http_timeout) + 30


def pause_end(cancels: list[int], limit: int, pause: int) -> int | None:
    """When a pause for cancelling too often ends, from the times of the customer's latest
    own cancels (newest first): `limit` of them within CANCEL_WINDOW_SECONDS pause buying
    for `pause` seconds after the last one. None: no pause (the limit 0 turns it off)."""
    if limit <= 0 or len(cancels) < limit:
        return None
    if cancels[0] - cancels[limit - 1] > CANCEL_WINDOW_SECONDS:
        return None
    return cancels[0] + pause


class PriceChanged(AppError):
    """The upstream price rose since the quote; the customer must confirm the new one."""

    user_message = "The price has changed. Please confirm the new price."

    def __init__(self, quote: Quote) -> None:
        super().__init__()
        self.quote = quote


class PurchaseFailed(AppError):
    """The purchase failed upstream and the customer was refunded in full (`refunded` is 0
    when someone else settled the order first)."""

    def __init__(self, cause: ProviderError, refunded: int) -> None:
        super().__init__(cause.user_message)
        self.cause = cause
        self.refunded = refunded


class Jobs(Protocol):
    """Scheduling, as the order service needs it (`shop.jobs.OrderJobs`: a due-queue per
    route and one deadline queue, rebuilt from the orders table at start)."""

    def watch(self, order_id: int, deadline: int, route: str | None = None) -> None: ...

    def retry_close(self, order_id: int, delay: float) -> None: ...

    def unwatch(self, order_id: int) -> None: ...


class CancelOutcome(enum.Enum):
    REFUNDED = "refunded"
    CODE_ARRIVED = "code_arrived"
    ALREADY_CLOSED = "already_closed"


@dataclass(frozen=True)
class QuoteView:
    quote: Quote
    route: RouteInfo
    service_name: str
    country_name: str
    country_flag: str
    stock: int


@dataclass(frozen=True)
class Bought:
    """Pay went through: the number is the customer's."""

    order: Order


@dataclass(frozen=True)
class Repriced:
    """The upstream price rose since the quote: nothing was charged; this is the new quote."""

    view: QuoteView


@dataclass(frozen=True)
class NotBought:
    """No number: nothing was charged, or the charge (`refunded`) is back on the balance.
    `alternative` is another route's quote for the same choice when this one had none left."""

    quote: Quote
    error: AppError
    refunded: int = 0
    alternative: QuoteView | None = None


@dataclass(frozen=True)
class AlreadyBuying:
    """A second tap on the same Pay button: the first one is buying."""


Purchase = Bought | Repriced | NotBought | AlreadyBuying


class OrderService:
    def __init__(
        self,
        db: Database,
        quotes: QuoteRepository,
        orders: OrderRepository,
        ledger: LedgerRepository,
        kv: KeyValueRepository,
        catalog: CatalogService,
        pricing: Pricing,
        notifier: Notifier,
        jobs: Jobs,
        order_timeout: int,
        quote_ttl: int,
        cancel_limit: int = 0,
        cancel_pause: int = 3600,
        purchase_grace: int = 90,
        leases: Leases | None = None,
    ) -> None:
        self.db = db
        self.quotes = quotes
        self.orders = orders
        self.ledger = ledger
        self.kv = kv
        self.catalog = catalog
        self.pricing = pricing
        self.notifier = notifier
        self.jobs = jobs
        self.order_timeout = order_timeout
        self.quote_ttl = quote_ttl
        self.cancel_limit = cancel_limit  # 0: no limit
        self.cancel_pause = cancel_pause
        self.purchase_grace = purchase_grace
        # This instance's order leases (None: the only process, watching every live order).
        self.leases = leases

    def route(self, key: str) -> Route:
        route = self.catalog.routes.get(key)
        if route is None:
            raise NotFound(_("This route is not offered any more."))
        return route

    def route_info(self, key: str) -> RouteInfo:
        """What handlers are told about a route; NotFound when it is no longer configured."""
        info = self.catalog.route_infos.get(key)
        if info is None:
            raise NotFound(_("This route is not offered any more."))
        return info

    # -- buying ------------------------------------------------------------------------------

    async def quote(
        self, user_id: int, route_key: str, service_id: int, country: str
    ) -> QuoteView:
        """Hold the current price of one offer for this user for `quote_ttl` seconds."""
        await self.check_not_paused(user_id)
        route = self.route(route_key)
        offer = await self.catalog.offer(route_key, service_id, country)
        if offer is None or offer.stock <= 0:
            raise NoNumbers()
        price = (await self.pricing.table()).retail(route, offer.cost, service_id)
        quote = await self.quotes.create(
            user_id,
            route_key,
            service_id,
            country,
            offer.cost,
            price,
            self.quote_ttl,
            keep=MAX_OPEN_QUOTES,  # every route tap makes one: older screens stop paying
        )
        return await self.describe_quote(quote, offer.stock)

    async def purge_quotes(self) -> int:
        """The scheduled purge: quotes that expired unconsumed (none an order points to)."""
        return await self.quotes.purge_expired(int(time.time()))

    async def alternative(
        self, user_id: int, service_id: int, country: str, failed_route: str
    ) -> QuoteView | None:
        """The next cheapest route in stock for the same choice, quoted; None if there is none."""
        for choice in await self.catalog.route_choices(service_id, country):
            if choice.route.key != failed_route and choice.stock > 0:
                try:
                    return await self.quote(user_id, choice.route.key, service_id, country)
                except NoNumbers:
                    continue
        return None

    async def buy_paused_until(self, user_id: int, fresh: bool = False) -> int | None:
        """When buying resumes for a user who cancelled `cancel_limit` orders within an hour
        (Unix time), or None if they may buy. Counted from the orders table: only the
        customer's own Cancel counts, not timeouts, upstream failures or admin refunds.
        Screens may use what the process kept of the user's orders; `fresh` reads them (the
        quote and the purchase, which enforce the pause)."""
        if self.cancel_limit <= 0:
            return None
        now = int(time.time())
        since = now - max(self.cancel_pause, CANCEL_WINDOW_SECONDS)
        cancels = await self.orders.recent_user_cancels(
            user_id, self.cancel_limit, since, fresh=fresh
        )
        until = pause_end(cancels, self.cancel_limit, self.cancel_pause)
        return until if until is not None and until > now else None

    async def check_not_paused(self, user_id: int) -> None:
        """Raise BuyPaused (with the time buying resumes) while the user's buying is paused."""
        until = await self.buy_paused_until(user_id, fresh=True)
        if until is not None:
            raise BuyPaused(until)

    async def describe_quote(self, quote: Quote, stock: int = 0) -> QuoteView:
        service = await self.catalog.service(quote.service_id)
        country = await self.catalog.country(quote.country)
        return QuoteView(
            quote, self.route_info(quote.route), service.name, country.name, country.flag, stock
        )

    async def payable_quote(self, user_id: int, quote_id: int) -> Quote:
        """The user's quote if it can still be paid; raises otherwise."""
        quote = await self.quotes.get(quote_id)
        if quote is None or quote.user_id != user_id:
            raise NotFound(_("This price is not available. Please start again."))
        if quote.consumed_at is not None:
            raise InvalidState(_("This purchase is already being processed."))
        if quote.expires_at <= time.time():
            raise QuoteExpired()
        return quote

    async def buy(
        self,
        user_id: int,
        quote_id: int,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> Purchase:
        """Pay: `confirm`, with its outcome as a value. When the route had no numbers, the
        next cheapest route in stock for the same choice is quoted as the `alternative`."""
        try:
            return Bought(await self.confirm(user_id, quote_id, chat_id, message_id))
        except InvalidState:
            return AlreadyBuying()
        except PriceChanged as changed:
            return Repriced(await self.describe_quote(changed.quote))
        except AppError as error:
            quote = await self.quotes.get(quote_id)
            if quote is None or quote.user_id != user_id:
                raise  # not this user's price (or purged meanwhile): nothing to offer
            failed = error if isinstance(error, PurchaseFailed) else None
            cause = failed.cause if failed is not None else error
            alternative = None
            if isinstance(cause, NoNumbers):
                alternative = await self.alternative(
                    user_id, quote.service_id, quote.country, quote.route
                )
            return NotBought(quote, error, failed.refunded if failed else 0, alternative)

    async def confirm(
        self,
        user_id: int,
        quote_id: int,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> Order:
        """Charge the quoted price and buy the number. Refunds in full if the purchase fails."""
        quote = await self.payable_quote(user_id, quote_id)
        await self.check_not_paused(user_id)  # a quote taken before the pause began
        route = self.route(quote.route)
        service_code, country_ref = await self.catalog.upstream_refs(
            quote.route, quote.service_id, quote.country
        )
        current = await route.price(service_code, country_ref)
        if current is None or current.stock <= 0:
            raise NoNumbers()
        current_price = (await self.pricing.table()).retail(route, current.cost, quote.service_id)
        if current_price > quote.price:
            fresh = await self.quotes.create(
                user_id,
                quote.route,
                quote.service_id,
                quote.country,
                current.cost,
                current_price,
                self.quote_ttl,
            )
            raise PriceChanged(fresh)

        now = int(time.time())
        async with self.db.transaction() as tx:
            if not await self.quotes.consume(tx, quote.id, user_id, now):
                raise InvalidState(_("This purchase is already being processed."))
            order_id = await self.orders.create(
                tx, quote, self.pricing.cost(route, current.cost), chat_id, message_id, now
            )
            if self.leases is not None:
                await self.leases.hold(tx, order_id)
            if not await self.ledger.apply(
                tx, user_id, -quote.price, LedgerKind.PURCHASE, "number purchase", order_id
            ):
                raise InsufficientFunds()

        # The customer agreed to the quoted cost; a cheaper current cost is fine too.
        max_cost = max(quote.upstream_cost, current.cost)
        try:
            activation = await route.buy(
                service_code, country_ref, ref=str(order_id), max_cost=max_cost
            )
        except PurchaseOutcomeUnknown as exc:
            await self._fail(order_id, exc, needs_attention=True)
            await self._alert(
                f"unknown:{order_id}",
                lazy(
                    "Order #{order_id}: getNumber on {route} did not get a clear answer (none, "
                    "or one that proves nothing). The customer was refunded; check upstream for "
                    "a number with ref={order_id}.",
                    order_id=order_id,
                    route=route.title,
                ),
            )
            raise PurchaseFailed(exc, quote.price) from None
        except ProviderError as exc:
            await self._fail(order_id, exc, needs_attention=False)
            if isinstance(exc, UpstreamNoBalance):
                await self._alert(
                    f"nobalance:{route.account}",
                    lazy(
                        "{route}: the upstream account balance is too low (NO_BALANCE). "
                        "Customers cannot buy on this route until it is topped up.",
                        route=route.title,
                    ),
                )
            raise PurchaseFailed(exc, quote.price) from None
        except Exception as exc:
            # Not an answer from the upstream at all (a parser bug, a client error): nothing
            # proves that no number was sold, so it is settled now as an unknown outcome
            # rather than left charged until the next start.
            log.exception("Order %s: the purchase on %s failed unexpectedly", order_id, route.key)
            await self._fail(order_id, exc, needs_attention=True)
            await self._alert(
                f"unknown:{order_id}",
                lazy(
                    "Order #{order_id}: the purchase on {route} failed with an unexpected error "
                    "({error}). The customer was refunded; check upstream for a number with "
                    "ref={order_id}.",
                    order_id=order_id,
                    route=route.title,
                    error=type(exc).__name__,
                ),
            )
            raise PurchaseFailed(PurchaseOutcomeUnknown(type(exc).__name__), quote.price) from None

        deadline = int(time.time()) + self.order_timeout
        try:
            async with self.db.transaction() as tx:
                issued = await self.orders.transition(
                    tx,
                    order_id,
                    [OrderStatus.CREATED],
                    OrderStatus.NUMBER_ISSUED,
                    activation_id=activation.activation_id,
                    phone=activation.phone,
                    deadline=deadline,
                )
        except Exception:
            log.exception("Order %s: recording number %s failed", order_id, activation.phone)
            issued = False
        if not issued:
            # Settled meanwhile (the sweeper, or recovery in another process), or not recorded:
            # nobody would watch, cancel or bill this number.
            await self._lost_number(order_id, route, activation)
            closed = await self.orders.get(order_id)
            assert closed is not None
            refunded = closed.price if closed.refunded else 0
            raise PurchaseFailed(PurchaseOutcomeUnknown("order closed during purchase"), refunded)
        self.jobs.watch(order_id, deadline, route.key)
        order = await self.orders.get(order_id)
        assert order is not None
        log.info("Order %s: number issued on %s", order_id, route.key)
        return order

    async def _lost_number(self, order_id: int, route: Route, activation: Activation) -> None:
        """A number bought for an order that is no longer `created`: cancel it upstream; if
        that fails, keep the activation on the order, flag it and alert the owners. An order
        still `created` (its update failed) is settled as an unknown outcome."""
        cancelled = True
        try:
            await route.cancel(activation.activation_id)
        except NoActivation:
            pass
        except ProviderError as exc:
            log.warning("Order %s: cancelling lost number upstream failed: %s", order_id, exc)
            cancelled = False
            await self.orders.update(
                order_id,
                activation_id=activation.activation_id,
                phone=activation.phone,
                needs_attention=1,
            )
            await self._alert(
                f"lost:{order_id}",
                lazy(
                    "Order #{order_id} on {route}: a number was bought for an order that had "
                    "left the purchase (closed meanwhile, or its update failed), and cancelling "
                    "it failed ({error}). Cancel activation {activation} ({phone}) by hand.",
                    order_id=order_id,
                    route=route.title,
                    error=type(exc).__name__,
                    activation=activation.activation_id,
                    phone=activation.phone,
                ),
            )
        if cancelled:
            log.warning(
                "Order %s: number of activation %s bought after the order closed; cancelled",
                order_id,
                activation.activation_id,
            )
            await self._alert(
                f"lost:{order_id}",
                lazy(
                    "Order #{order_id} on {route}: a number was bought for an order that had "
                    "left the purchase (closed meanwhile, or its update failed); activation "
                    "{activation} was cancelled upstream.",
                    order_id=order_id,
                    route=route.title,
                    activation=activation.activation_id,
                ),
            )
        order = await self.orders.get(order_id)
        if order is not None and order.status is OrderStatus.CREATED:
            await self._settle_interrupted(
                order_id,
                lazy(
                    "Order #{order_id}: the number bought on {route} could not be recorded. "
                    "The customer was refunded; check upstream for ref={order_id}.",
                    order_id=order_id,
                    route=route.title,
                ),
            )

    async def _fail(self, order_id: int, exc: BaseException, needs_attention: bool) -> bool:
        """Close an order still `created` as failed and refund it, in one transaction; False
        if it had left `created` (someone else settled it)."""
        log.warning("Order %s failed upstream: %s", order_id, exc)
        async with self.db.transaction() as tx:
            order = await self.orders.get_in(tx, order_id)
            assert order is not None
            if not await self.orders.transition(
                tx,
                order_id,
                [OrderStatus.CREATED],
                OrderStatus.FAILED,
                error=type(exc).__name__,
                needs_attention=int(needs_attention),
            ):
                return False
            refunded = await self._refund(tx, order, "purchase failed upstream")
        metrics.order_settled(order.route, OrderStatus.FAILED.value)
        if refunded:
            metrics.order_refunded(order.route, OrderStatus.FAILED.value)
        return True

    async def _settle_interrupted(self, order_id: int, alert: LazyText) -> None:
        """An order left in `created` (a crash, a stuck request): the purchase's outcome is
        unknown, so refund, flag, alert the owners and tell the customer."""
        if not await self._fail(
            order_id, PurchaseOutcomeUnknown("interrupted"), needs_attention=True
        ):
            return
        await self._alert(f"unknown:{order_id}", alert)
        failed = await self.orders.get(order_id)
        assert failed is not None
        await self.notifier.order_closed(await self.card(failed), failed.price)

    async def settle_stuck_purchases(self) -> None:
        """The sweeper's part: settle every order still `created` past the purchase grace
        period (see `purchase_grace`) while the bot keeps running."""
        before = int(time.time()) - self.purchase_grace
        for order_id, route in await self.orders.created_before(before):
            await self._settle_interrupted(
                order_id,
                lazy(
                    "Order #{order_id}: the purchase on {route} did not finish within {seconds} "
                    "s (a crash or a stuck request). The customer was refunded; check upstream "
                    "for ref={order_id}.",
                    order_id=order_id,
                    route=route,
                    seconds=self.purchase_grace,
                ),
            )

    async def _refund(self, tx: Tx, order: Order, reason: str) -> int:
        """Refund the order's price; 0 if it was refunded before (the schema allows one)."""
        return await self.ledger.refund_once(
            tx, order.user_id, order.price, reason, order_id=order.id
        )

    # -- reading -----------------------------------------------------------------------------

    async def get(self, order_id: int) -> Order | None:
        return await self.orders.get(order_id)

    async def get_for_user(self, user_id: int, order_id: int) -> Order:
        order = await self.orders.get(order_id)
        if order is None or order.user_id != user_id:
            raise NotFound(_("Order not found."))
        return order

    async def page_for_user(
        self, user_id: int, page: int, per_page: int
    ) -> tuple[list[Order], int]:
        """A page of the user's orders (past the end: the last one) and the number of pages;
        one read unless the page asked for is past the end (an old pager)."""
        page = max(page, 0)
        orders, total = await self.orders.page_for_user(user_id, per_page, page * per_page)
        if orders or page == 0:
            return orders, max(1, -(-total // per_page))
        pages = max(1, -(-(await self.orders.count_for_user(user_id)) // per_page))
        page = min(page, pages - 1)
        return await self.orders.for_user(user_id, per_page, page * per_page), pages

    async def codes(self, order_id: int) -> list[OrderCode]:
        return await self.orders.codes(order_id)

    async def card(self, order: Order) -> OrderCard:
        """What the order's card shows: its codes, route and country as known now."""
        return OrderCard(
            order,
            await self.orders.codes(order.id),
            self.catalog.route_infos.get(order.route),
            await self.catalog.find_country(order.country),
        )

    async def codes_for(self, order_ids: list[int]) -> dict[int, list[OrderCode]]:
        return await self.orders.codes_for(order_ids)

    # -- watching ------------------------------------------------------------------------------

    async def poll(self, order_id: int) -> bool:
        """One status check; True while the order should keep being polled."""
        order = await self.orders.get(order_id)
        if order is None or order.status not in WATCHED or order.activation_id is None:
            return False
        if order.route not in self.catalog.routes:
            await self._orphan_met(order)
            return False
        try:
            status = await self.route(order.route).status(order.activation_id)
        except NoActivation:
            status = ActivationStatus(StatusKind.CANCELLED)
        except ProviderError as exc:
            log.info("Order %s: poll failed (%s); will retry", order_id, exc)
            return True
        if status.code:
            await self._record_code(order_id, status.code, status.text)
        if status.kind is StatusKind.CANCELLED:
            await self._upstream_gone(order_id)
            return False
        return True

    async def _record_code(self, order_id: int, code: str, text: str | None) -> None:
        async with self.db.transaction() as tx:
            order = await self.orders.get_in(tx, order_id)
            if order is None or order.status not in WATCHED:
                return
            if not await self.orders.add_code(tx, order_id, code, text, int(time.time())):
                return  # the same code again
            await self.orders.transition(
                tx, order_id, [OrderStatus.NUMBER_ISSUED], OrderStatus.CODE_RECEIVED
            )
        log.info("Order %s: code received", order_id)
        await self.deliver_pending(order_id)

    async def deliver_pending(self, order_id: int) -> None:
        """Send every stored, undelivered code of an order, then refresh its card. With
        leases, each code's sending is claimed first, so of two instances that meet the same
        stored code (the holder and the sweeper, or a restart) only one sends it."""
        order = await self.orders.get(order_id)
        if order is None:
            return
        for code in await self.orders.codes(order_id):
            if code.delivered_at is not None:
                continue
            if self.leases is not None and not await self.leases.claim_code(code.id):
                continue  # delivered meanwhile, or being sent by another instance
            if await self.notifier.code_received(order, code):
                await self.orders.mark_delivered(code.id)
            elif self.leases is not None:
                await self.leases.unclaim_code(code.id)  # the sweeper tries again
        await self.notifier.order_changed(await self.card(order))

    async def _upstream_gone(self, order_id: int) -> None:
        """Upstream cancelled the activation by itself: refund if no code came."""
        order = await self.orders.get(order_id)
        if order is None:
            return
        if order.status is OrderStatus.CODE_RECEIVED:
            await self._complete(order)
        elif order.status is OrderStatus.NUMBER_ISSUED:
            await self._close_and_refund(order, OrderStatus.EXPIRED, "cancelled upstream")

    async def _close_and_refund(
        self, order: Order, to: OrderStatus, reason: str, flag: bool = False
    ) -> int:
        flags = {"needs_attention": 1} if flag else {}
        async with self.db.transaction() as tx:
            if not await self.orders.transition(
                tx, order.id, [OrderStatus.NUMBER_ISSUED], to, error=reason, **flags
            ):
                return 0
            refunded = await self._refund(tx, order, reason)
        metrics.order_settled(order.route, to.value)
        if refunded:
            metrics.order_refunded(order.route, to.value)
        self.jobs.unwatch(order.id)
        closed = await self.orders.get(order.id)
        assert closed is not None
        log.info("Order %s: %s, refunded %s", order.id, to.value, refunded)
        await self.notifier.order_closed(await self.card(closed), refunded)
        return refunded

    async def _complete(self, order: Order) -> None:
        async with self.db.transaction() as tx:
            done = await self.orders.transition(
                tx, order.id, [OrderStatus.CODE_RECEIVED], OrderStatus.COMPLETED
            )
        self.jobs.unwatch(order.id)
        if done:
            metrics.order_settled(order.route, OrderStatus.COMPLETED.value)
            completed = await self.orders.get(order.id)
            assert completed is not None
            await self.notifier.order_changed(await self.card(completed))

    async def _final_check(self, order: Order) -> bool:
        """Ask upstream once more before giving up; True if a code turned up."""
        assert order.activation_id is not None
        try:
            status = await self.route(order.route).status(order.activation_id)
        except NoActivation:
            return False
        if status.code:
            await self._record_code(order.id, status.code, status.text)
            return True
        return False

    async def _cancel_upstream(self, order: Order) -> None:
        assert order.activation_id is not None
        try:
            await self.route(order.route).cancel(order.activation_id)
        except NoActivation:
            pass  # upstream no longer holds the number

    async def expire(self, order_id: int) -> None:
        """The deadline job: complete an order with a code, otherwise cancel and refund."""
        order = await self.orders.get(order_id)
        if order is None or order.status not in WATCHED:
            return
        if order.route not in self.catalog.routes:
            await self._orphan_met(order)
            return
        try:
            if order.status is OrderStatus.NUMBER_ISSUED and not await self._final_check(order):
                await self._cancel_upstream(order)
                await self._close_and_refund(order, OrderStatus.EXPIRED, "no code before deadline")
                return
        except ProviderError as exc:
            await self._close_later(order, exc)
            return
        order = await self.orders.get(order_id)
        if order is not None and order.status is OrderStatus.CODE_RECEIVED:
            if self.route(order.route).can_finish and order.activation_id:
                try:
                    await self.route(order.route).finish(order.activation_id)
                except ProviderError as exc:
                    log.info("Order %s: finish upstream failed (%s)", order_id, exc)
            await self._complete(order)

    async def _close_later(self, order: Order, exc: ProviderError) -> None:
        attempts = order.close_attempts + 1
        await self.orders.update(order.id, close_attempts=attempts)
        if attempts < MAX_CLOSE_ATTEMPTS:
            log.info("Order %s: cancel failed (%s); attempt %d", order.id, exc, attempts)
            self.jobs.retry_close(order.id, 15.0 * attempts)
            return
        # The customer never waits on our upstream: refund now, the owner settles it upstream.
        await self.orders.update(order.id, needs_attention=1)
        await self._close_and_refund(
            order, OrderStatus.EXPIRED, f"cancel failed: {type(exc).__name__}"
        )
        await self._alert(
            f"close:{order.id}",
            lazy(
                "Order #{order_id} on {route}: could not cancel upstream after {attempts} "
                "tries ({error}). The customer was refunded; cancel activation "
                "{activation} by hand.",
                order_id=order.id,
                route=order.route,
                attempts=attempts,
                error=type(exc).__name__,
                activation=order.activation_id,
            ),
        )

    # -- routes no longer configured -------------------------------------------------------------

    async def _settle_orphan(self, order: Order) -> int:
        """A live order whose route is no longer configured (its key unset): no call can reach
        its upstream, so close it. Waiting for a code: cancel, refund, flag (the upstream may
        still hold the number) and tell the customer. With a code: complete it (the customer
        has the code; nothing is refunded). Returns what was refunded."""
        if order.status is OrderStatus.CODE_RECEIVED:
            await self._complete(order)
            return 0
        if order.status is not OrderStatus.NUMBER_ISSUED:
            return 0
        log.warning("Order %s: route %s is not configured; closing it", order.id, order.route)
        return await self._close_and_refund(order, OrderStatus.CANCELLED, ROUTE_REMOVED, flag=True)

    async def _orphan_met(self, order: Order) -> int:
        """Settle an order of a route no longer configured, met by a job or an action."""
        refunded = await self._settle_orphan(order)
        if refunded:
            await self._alert_orphans(order.route, [order])
        return refunded

    async def _alert_orphans(self, route: str, orders: list[Order]) -> None:
        listed = ", ".join(f"#{o.id} ({o.activation_id or '?'})" for o in orders[:ORPHANS_LISTED])
        if len(orders) > ORPHANS_LISTED:
            listed += f", +{len(orders) - ORPHANS_LISTED}"
        await self._alert(
            f"orphans:{route}:{orders[0].id}",
            lazy(
                "Route {route} is no longer configured (is its API key unset?). {count} live "
                "order(s) on it were closed, refunded and flagged; the upstream may still hold "
                "their numbers, so cancel them there. Orders (activation): {orders}",
                route=route,
                count=len(orders),
                orders=listed,
            ),
        )

    # -- customer actions ------------------------------------------------------------------------

    async def cancel(self, user_id: int, order_id: int) -> CancelOutcome:
        """The customer's Cancel: refund unless a code came; EARLY_CANCEL_DENIED keeps it live."""
        order = await self.get_for_user(user_id, order_id)
        if order.status is OrderStatus.CODE_RECEIVED:
            raise InvalidState(_("A code has arrived for this number, so it can't be cancelled."))
        if order.status is not OrderStatus.NUMBER_ISSUED:
            return CancelOutcome.ALREADY_CLOSED
        if order.route not in self.catalog.routes:
            refunded = await self._orphan_met(order)
            return CancelOutcome.REFUNDED if refunded else CancelOutcome.ALREADY_CLOSED
        try:
            if await self._final_check(order):
                return CancelOutcome.CODE_ARRIVED
            await self._cancel_upstream(order)
        except EarlyCancelDenied:
            raise
        except ProviderError as exc:
            log.info("Order %s: cancel failed (%s)", order_id, exc)
            raise TryAgainLater(
                _("The provider did not answer. Please try again in a moment.")
            ) from None
        refunded = await self._close_and_refund(order, OrderStatus.CANCELLED, USER_CANCEL)
        return CancelOutcome.REFUNDED if refunded else CancelOutcome.ALREADY_CLOSED

    async def request_another(self, user_id: int, order_id: int) -> Order:
        """Ask upstream for another SMS on the same number (setStatus 3)."""
        order = await self.get_for_user(user_id, order_id)
        route = self.route(order.route)
        if not route.can_request_another or order.status is not OrderStatus.CODE_RECEIVED:
            raise InvalidState(
                _("Another code can be requested only after the first one arrived.")
            )
        assert order.activation_id is not None
        await route.request_another(order.activation_id)
        return order

    async def finish(self, user_id: int, order_id: int) -> Order:
        """The customer is done with the number (setStatus 6)."""
        order = await self.get_for_user(user_id, order_id)
        route = self.route(order.route)
        if not route.can_finish or order.status is not OrderStatus.CODE_RECEIVED:
            raise InvalidState(_("This order can be finished only after a code arrived."))
        assert order.activation_id is not None
        await route.finish(order.activation_id)
        await self._complete(order)
        finished = await self.orders.get(order_id)
        assert finished is not None
        return finished

    # -- admin -----------------------------------------------------------------------------------

    async def admin_refund(self, order_id: int, admin_id: int) -> int:
        """Refund an order that got no code and no refund yet; cancels it upstream if live.

        The refund is written only with the order's own move to `cancelled`, in one
        transaction: a code that arrives while the upstream cancel is in flight wins, and the
        admin is told so. An order whose purchase is still in progress is refused (its number
        would be lost); the sweeper settles it if it stays stuck."""
        order = await self.orders.get(order_id)
        if order is None:
            raise NotFound(_("Order #{order_id} does not exist.").format(order_id=order_id))
        if order.refunded:
            raise InvalidState(
                _("Order #{order_id} was already refunded.").format(order_id=order_id)
            )
        if order.status is OrderStatus.CREATED:
            raise InvalidState(
                _(
                    "Order #{order_id}: its purchase is still in progress. Try again in a "
                    "minute; an order stuck there is refunded by the bot itself."
                ).format(order_id=order_id)
            )
        if await self.orders.codes(order_id) or order.status in (
            OrderStatus.CODE_RECEIVED,
            OrderStatus.COMPLETED,
        ):
            raise InvalidState(
                _("Order #{order_id} received a code; it cannot be refunded.").format(
                    order_id=order_id
                )
            )
        if order.status is OrderStatus.NUMBER_ISSUED and order.route not in self.catalog.routes:
            refunded = await self._orphan_met(order)
            if not refunded:
                raise await self._not_refunded(order_id)
            return refunded
        reason = f"refunded by admin {admin_id}"
        flags: dict[str, object] = {}
        if order.status is OrderStatus.NUMBER_ISSUED:
            try:
                await self._cancel_upstream(order)
            except ProviderError as exc:
                log.warning("Order %s: admin refund could not cancel upstream: %s", order_id, exc)
                flags["needs_attention"] = 1  # if refunded: the upstream may keep the number
        async with self.db.transaction() as tx:
            if order.status is OrderStatus.NUMBER_ISSUED:
                closed = await self.orders.transition(
                    tx,
                    order_id,
                    [OrderStatus.NUMBER_ISSUED],
                    OrderStatus.CANCELLED,
                    error=reason,
                    **flags,
                )
            else:  # closed before without a code and without its refund: only that is missing
                closed = True
            refunded = await self._refund(tx, order, reason) if closed else 0
        if order.status is OrderStatus.NUMBER_ISSUED and closed:
            metrics.order_settled(order.route, OrderStatus.CANCELLED.value)
        if not refunded:
            raise await self._not_refunded(order_id)
        metrics.order_refunded(order.route, "admin")
        self.jobs.unwatch(order_id)
        done = await self.orders.get(order_id)
        assert done is not None
        await self.notifier.order_closed(await self.card(done), refunded)
        return refunded

    async def _not_refunded(self, order_id: int) -> InvalidState:
        """Why an admin refund wrote nothing: the order moved on meanwhile."""
        order = await self.orders.get(order_id)
        if order is not None and order.status in (
            OrderStatus.CODE_RECEIVED,
            OrderStatus.COMPLETED,
        ):
            return InvalidState(
                _(
                    "Order #{order_id}: a code arrived before the cancel went through, so it "
                    "was not refunded. The customer keeps the code."
                ).format(order_id=order_id)
            )
        if order is not None and order.refunded:
            return InvalidState(
                _("Order #{order_id} was already refunded.").format(order_id=order_id)
            )
        return InvalidState(
            _(
                "Order #{order_id} changed meanwhile; nothing was refunded. See /order {order_id}."
            ).format(order_id=order_id)
        )

    async def record_push(
        self, route_key: str, event_key: str, activation_id: str, routing: RoutingRepository
    ) -> int | None:
        """An upstream says an SMS arrived (a webhook): store the event once and return the
        order to check. The caller then runs `poll(order)`: its status call is the proof, so a
        push naming someone else's activation, or a code that did not come, changes nothing."""
        order_id = await routing.order_by_activation(route_key, activation_id)
        if order_id is None:
            log.info("Push for an unknown activation on %s", route_key)
            return None
        if not await routing.record_event(route_key, event_key, activation_id):
            return None  # delivered twice: handled the first time
        return order_id

    # -- restart ---------------------------------------------------------------------------------

    async def recover(self) -> None:
        """After a start: settle purchases cut off by a stop or a crash, take the live orders
        nobody holds (`claim_free`: all of them for the only instance; never those of another
        live instance), and send codes stored but not sent."""
        if self.leases is None:
            await self._recover_all()
            return
        for order_id, route in await self.leases.interrupted():
            await self._settle_interrupted(order_id, self._interrupted_alert(order_id, route))
        await self.claim_free()
        await self.sweep_codes()

    @staticmethod
    def _interrupted_alert(order_id: int, route: str) -> LazyText:
        return lazy(
            "Order #{order_id}: the bot stopped during the purchase on {route}. "
            "The customer was refunded; check upstream for ref={order_id}.",
            order_id=order_id,
            route=route,
        )

    async def claim_free(self) -> int:
        """Take the live orders no live instance holds (their instance died or stopped, or
        they predate leases) and watch them: polls resume, overdue ones expire, codes stored
        and not sent go out. Orders of routes no longer configured are settled instead.
        Returns how many were taken."""
        assert self.leases is not None
        taken: list[int] = []
        orphans: dict[str, list[Order]] = {}
        while True:
            batch = await self.leases.claim(CLAIM_BATCH)
            for order_id, _status, deadline, route in batch:
                taken.append(order_id)
                if route not in self.catalog.routes:
                    order = await self.orders.get(order_id)
                    if order is not None and await self._settle_orphan(order):
                        orphans.setdefault(route, []).append(order)
                    continue
                self.jobs.watch(order_id, deadline or int(time.time()), route)
            if len(batch) < CLAIM_BATCH:
                break
        for route, settled in orphans.items():
            await self._alert_orphans(route, settled)
        if taken:
            log.info("Took over %s live order(s) nobody held", len(taken))
            ours = set(taken)
            pending = {c.order_id for c in await self.orders.undelivered_codes()} & ours
            for order_id in sorted(pending):
                await self.deliver_pending(order_id)
        return len(taken)

    async def renew_leases(self) -> list[tuple[int, OrderStatus, int | None, str]]:
        """Extend this instance's order leases: (id, status, deadline, route) of each live
        order it still holds."""
        assert self.leases is not None
        return [
            (order_id, OrderStatus(status), deadline, route)
            for order_id, status, deadline, route in await self.leases.renew()
        ]

    async def _recover_all(self) -> None:
        """`recover` without leases: every live order is this process's."""
        orphans: dict[str, list[Order]] = {}
        async for order_id, status, deadline, route in self.orders.live_brief():
            if status is OrderStatus.CREATED:
                # We crashed between charging and learning the purchase's outcome.
                await self._settle_interrupted(order_id, self._interrupted_alert(order_id, route))
                continue
            if route not in self.catalog.routes:
                order = await self.orders.get(order_id)
                if order is not None and await self._settle_orphan(order):
                    orphans.setdefault(route, []).append(order)
                continue
            self.jobs.watch(order_id, deadline or int(time.time()), route)
        for route, settled in orphans.items():
            await self._alert_orphans(route, settled)
        await self.sweep_codes()

    async def sweep_codes(self) -> None:
        """Deliver codes that were stored but not sent (a crash, a flood limit)."""
        pending = {code.order_id for code in await self.orders.undelivered_codes()}
        for order_id in sorted(pending):
            await self.deliver_pending(order_id)

    async def _alert(self, key: str, text: str | LazyText) -> None:
        if await self.kv.claim_every(f"alert:{key}", ALERT_EVERY_SECONDS):
            await self.notifier.alert_admins(text)
