"""Plain records that repositories return. No SQL and no behaviour beyond derived fields."""

from __future__ import annotations

import enum
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
