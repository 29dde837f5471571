"""The domain's records: what repositories return, services use and handlers render.

Plain data: no SQL and no behaviour beyond derived fields.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal


class OrderStatus(enum.StrEnum):
    CREATED = "created"
    NUMBER_ISSUED = "number_issued"
    CODE_RECEIVED = "code_received"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"

    @property
    def is_live(self) -> bool:
        return self in LIVE_STATUSES


LIVE_STATUSES = frozenset(
    {OrderStatus.CREATED, OrderStatus.NUMBER_ISSUED, OrderStatus.CODE_RECEIVED}
)


class LedgerKind(enum.StrEnum):
    CREDIT = "credit"
    PURCHASE = "purchase"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    TOPUP = "topup"
    TOPUP_REFUND = "topup_refund"
    PROMO = "promo"
    REFERRAL = "referral"
    RENTAL = "rental"
    RENTAL_EXTEND = "rental_extend"
    RENTAL_REFUND = "rental_refund"


@dataclass(frozen=True)
class User:
    id: int
    username: str | None
    first_name: str
    language: str | None
    balance: int
    is_active: bool
    created_at: int
    referrer_id: int | None = None
    is_banned: bool = False
    locale: str | None = None  # chosen with /language; None follows Telegram's language
    last_seen: int = 0  # refreshed at most hourly, for "active in 7 days"


@dataclass(frozen=True)
class Service:
    id: int
    slug: str
    name: str


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    flag: str


@dataclass(frozen=True)
class Offer:
    route: str
    service_id: int
    country: str
    cost: Decimal
    stock: int
    updated_at: int
    looked_up: bool = False  # priced for this one pair, not from the route's bulk list


@dataclass(frozen=True)
class Quote:
    id: int
    user_id: int
    route: str
    service_id: int
    country: str
    upstream_cost: Decimal
    price: int
    created_at: int
    expires_at: int
    consumed_at: int | None


@dataclass(frozen=True)
class Order:
    id: int
    user_id: int
    route: str
    service_id: int
    service_name: str
    country: str
    price: int
    upstream_cost: Decimal
    cost: int
    status: OrderStatus
    activation_id: str | None
    phone: str | None
    deadline: int | None
    error: str | None
    needs_attention: bool
    close_attempts: int
    chat_id: int | None
    message_id: int | None
    created_at: int
    updated_at: int
    finished_at: int | None
    refunded: bool


@dataclass(frozen=True)
class OrderCode:
    id: int
    order_id: int
    code: str
    text: str | None
    received_at: int
    delivered_at: int | None


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    user_id: int
    amount: int
    kind: LedgerKind
    reason: str
    order_id: int | None
    actor_id: int | None
    created_at: int
    topup_id: int | None = None
    promo_code: str | None = None
    sms_send_id: int | None = None
    rental_id: int | None = None


# -- Orders: how they end, and what the ledger holds for them ------------------------------------

# `orders.error` of an order the customer cancelled with the Cancel button (the cancel limit
# counts these; timeouts are 'expired', admin refunds and failures carry other reasons).
USER_CANCEL = "cancelled by customer"

# `orders.error` of a live order closed because its route is no longer configured.
ROUTE_REMOVED = "route no longer configured"


@dataclass(frozen=True)
class OrderLedger:
    """An order whose ledger rows do not match its state, with what the ledger holds."""

    order_id: int
    user_id: int
    status: OrderStatus
    price: int
    paid: int | None  # the purchase row's amount (negative), None without one
    payer: int | None
    refunded: int | None  # the refund row's amount, None without one
    payee: int | None
    has_code: bool


@dataclass(frozen=True)
class OrderCard:
    """What an order's card shows: the order, its codes so far, and the route and country it
    was bought on as the shop describes them now (None when no longer known)."""

    order: Order
    codes: list[OrderCode]
    route: RouteInfo | None
    country: Country | None


# -- Catalog and routing -------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteInfo:
    """A route (one way to buy a number, e.g. SMSPalm Server 2) as handlers see it: what it is
    called and what it can do, never the upstream client itself."""

    key: str  # short, stable, used in callback data and the database
    title: str  # shown on buttons
    account: str  # routes with the same account share an upstream balance
    can_request_another: bool
    can_finish: bool
    is_sandbox: bool


@dataclass(frozen=True)
class RouteService:
    code: str
    slug: str
    name: str
    rank: int = 0


@dataclass(frozen=True)
class RouteCountry:
    upstream_id: str
    code: str
    name: str
    flag: str


@dataclass(frozen=True)
class OfferRow:
    country: str
    cost: Decimal
    stock: int


@dataclass(frozen=True)
class RouteStats:
    orders: int
    with_code: int


# -- Top-ups and promo codes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Topup:
    """An invoice we issued and, once paid, the credit it earned."""

    id: int
    user_id: int
    method: str  # stars | crypto
    amount: int  # shop currency, minor units
    pay_amount: str  # what the user pays: a number of stars, or a crypto amount
    pay_currency: str  # XTR, USDT, TON, ...
    status: str  # pending | paid | expired | refunded
    external_id: str | None
    pay_url: str | None
    charge_id: str | None
    created_at: int
    expires_at: int
    paid_at: int | None
    refunded_at: int | None


@dataclass(frozen=True)
class StarCharge:
    """A Stars payment Telegram reported, and how it ended (see migration 008)."""

    charge_id: str
    user_id: int
    topup_id: int | None
    stars: int
    currency: str
    payload: str
    status: str  # credited | refund_due | refunded | refund_failed
    reason: str | None  # duplicate | unmatched (None when credited)
    error: str | None
    created_at: int
    settled_at: int | None


@dataclass(frozen=True)
class PromoCode:
    code: str
    amount: int  # shop currency, minor units, per redemption
    max_uses: int
    used: int
    expires_at: int | None
    created_by: int | None
    created_at: int


# -- Outbound SMS --------------------------------------------------------------------------------

# The statuses of an SMS message that no longer change.
FINAL = ("delivered", "failed")


@dataclass(frozen=True)
class SmsSend:
    id: int
    user_id: int
    text: str
    sender: str
    encoding: str
    segments: int
    total_price: int
    status: str
    error: str | None
    needs_attention: bool
    chat_id: int | None
    message_id: int | None
    quote_expires_at: int
    deadline: int | None
    created_at: int


@dataclass(frozen=True)
class SmsMessage:
    id: int
    send_id: int
    to_number: str
    country: str
    price: int
    upstream_id: str | None
    status: str
    refunded: bool


# -- Broadcasts ----------------------------------------------------------------------------------


class BroadcastStatus(enum.StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    CANCELLED = "cancelled"
    DONE = "done"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class Broadcast:
    id: int
    admin_id: int
    from_chat_id: int
    message_id: int
    progress_chat: int
    progress_msg: int | None
    status: BroadcastStatus
    total: int
    created_at: int
    started_at: int | None
    finished_at: int | None


@dataclass(frozen=True)
class Counts:
    """Where a broadcast's deliveries stand. `unknown` rows are also counted in `sent`."""

    total: int = 0
    sent: int = 0
    failed: int = 0
    blocked: int = 0
    unknown: int = 0
    sending: int = 0

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.blocked

    @property
    def left(self) -> int:
        return self.total - self.done


@dataclass(frozen=True)
class Outcome:
    """The settled result of one delivery."""

    user_id: int
    status: DeliveryStatus
    error: str | None = None


# -- The owner's panel: figures, reconciliation, audit log ---------------------------------------


@dataclass(frozen=True)
class UserCounts:
    total: int
    new_since: int
    active_since: int
    banned: int


@dataclass(frozen=True)
class RouteSuccess:
    route: str
    with_number: int
    with_code: int


@dataclass(frozen=True)
class TopService:
    name: str
    orders: int
    revenue: int


@dataclass(frozen=True)
class TopupTotals:
    count: int
    amount: int


@dataclass(frozen=True)
class Snapshot:
    account: str
    currency: str
    amount: Decimal
    taken_at: int


@dataclass(frozen=True)
class ReconOrder:
    """One order as reconciliation sees it."""

    route: str
    status: str
    has_number: bool
    has_code: bool
    needs_attention: bool
    charged: bool
    refunded: bool
    price: int
    cost: int  # shop minor units
    upstream_cost: Decimal  # upstream currency
    created_at: int
    finished_at: int | None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    actor_id: int
    action: str
    target: str
    detail: str
    created_at: int


@dataclass(frozen=True)
class Instance:
    """One running bot process, as the instance registry knows it."""

    id: str  # random, per process
    host: str  # the machine's name, for people
    node: str  # the machine and its process namespace: where `pid` means something
    pid: int
    shared: bool  # runs with REDIS_URL (shares budgets, throttle, FSM through Redis)
    started_at: int
    seen_at: int  # the last heartbeat


# -- Rentals: SMSPool numbers by the day ---------------------------------------------------------


class RentalState(enum.StrEnum):
    BUYING = "buying"  # charged, purchase/rental in flight
    ACTIVE = "active"
    EXTENDED = "extended"  # active, extended at least once
    REFUNDED = "refunded"
    EXPIRED = "expired"
    FAILED = "failed"

    @property
    def is_live(self) -> bool:
        return self in (RentalState.ACTIVE, RentalState.EXTENDED)


@dataclass(frozen=True)
class NewRental:
    """A rental as `RentalService.charge` records it, in `buying`, before SMSPool is asked;
    `request_key` names the confirm screen, so a second tap on it records nothing."""

    user_id: int
    request_key: str
    offer_id: str  # SMSPool's rental id
    country: str  # SMSPool's country name
    extendable: bool
    service_id: str | None  # a single-service line (US, half price)
    days: int
    price: int  # charged, shop minor units
    upstream_cost: Decimal
    cost: int  # upstream cost, shop minor units
    pricing: Mapping[int, Decimal]  # the offer's table: days -> USD
    chat_id: int | None


@dataclass(frozen=True)
class NewExtension:
    """An extension as `RentalService.extend` records it, `pending`, before SMSPool is asked;
    `seq` is its number within the rental, so a second tap on the same Confirm records
    nothing."""

    rental_id: int
    seq: int
    days: int
    price: int  # charged, shop minor units
    upstream_cost: Decimal
    cost: int  # upstream cost, shop minor units


@dataclass(frozen=True)
class Rental:
    id: int
    user_id: int
    offer_id: str  # SMSPool's rental id
    rental_code: str | None  # SMSPool's rental_code once bought
    phone: str | None
    country: str  # SMSPool's country name
    extendable: bool
    service_id: str | None  # a single-service line (US, half price)
    days: int  # extensions included
    price: int  # charged for the purchase, shop minor units
    upstream_cost: Decimal
    cost: int  # upstream cost of the purchase, shop minor units
    pricing: dict[int, Decimal]  # the offer's table at purchase: days -> USD
    state: RentalState
    expires_at: int | None
    reminded_at: int | None
    ended_notified: bool
    needs_attention: bool
    error: str | None
    chat_id: int | None
    message_id: int | None
    created_at: int
    updated_at: int
    ended_at: int | None
    paid: int = 0  # net paid for it so far (purchase + extensions - refunds), from the ledger
    messages: int = 0  # messages received

    @property
    def refunded(self) -> bool:
        return self.state is RentalState.REFUNDED


@dataclass(frozen=True)
class RentalMessage:
    id: int
    rental_id: int
    sent_at: str  # SMSPool's timestamp, verbatim
    sender: str | None
    text: str
    received_at: int
    forwarded_at: int | None


@dataclass(frozen=True)
class RentalExtension:
    id: int
    rental_id: int
    seq: int
    days: int
    price: int
    state: str  # pending | done | refused | unknown
    created_at: int


@dataclass(frozen=True)
class RentalTotals:
    """Rentals for /stats and /reconcile: how many, what customers paid net, what SMSPool
    was paid (purchases and extensions that went through, minus rentals refunded upstream)."""

    count: int
    live: int
    revenue: int
    cost: int

    @property
    def margin(self) -> int:
        return self.revenue - self.cost
