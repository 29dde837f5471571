"""What every upstream route offers the shop, in types rather than strings.

A *route* is one way to buy a number: SMSPalm Server 1 and Server 2 are two routes of one
upstream account. Services call routes only through `Route`; clients raise only `ProviderError`s.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from shop.errors import AppError


class ProviderError(AppError):
    """An upstream said no, or said something we could not understand.

    The constructor argument is a detail for logs; users only ever see `user_message`.
    """

    user_message = "The number provider is unavailable right now. Please try again later."

    def __init__(self, detail: str = "") -> None:
        Exception.__init__(self, detail or type(self).__name__)


class NoNumbers(ProviderError):
    user_message = (
        "No numbers are available for this choice right now. Try another route or country."
    )


class UpstreamNoBalance(ProviderError):
    """The shop's own upstream account is empty (not the customer's wallet)."""

    user_message = "This route is temporarily unavailable. Please try another one."


class BadService(ProviderError):
    user_message = "This service is not available on this route any more."


class NoActivation(ProviderError):
    user_message = "The provider no longer knows this number."


class BadKey(ProviderError):
    user_message = "This route is temporarily unavailable. Please try another one."


class BadStatus(ProviderError):
    user_message = "This route does not support that action."


class EarlyCancelDenied(ProviderError):
    user_message = (
        "The provider does not allow cancelling this soon. Please try again in a minute."
    )


class UpstreamUnavailable(ProviderError):
    """HTTP 5xx, an HTML page, a timeout on a read, a refused connection, or an unknown answer."""


class RateLimited(UpstreamUnavailable):
    """The upstream answered HTTP 429."""


class PurchaseOutcomeUnknown(ProviderError):
    """A purchase request was sent but no answer came: a number may have been bought."""


# Rentals (numbers by the day). Not enough upstream balance is UpstreamNoBalance, as for numbers.


class InvalidRentalDays(ProviderError):
    """The rental is not sold (or extended) for that many days; `available_days` lists the
    periods the upstream named, if it named any."""

    user_message = "This rental period is not available. Please pick another one."

    def __init__(self, detail: str = "", available_days: tuple[int, ...] = ()) -> None:
        super().__init__(detail)
        self.available_days = available_days


class RentalUnavailable(ProviderError):
    """The rental (or the single service asked for on it) is not for sale."""

    user_message = "This rental is not available right now. Please pick another one."


class UnknownRental(NoActivation):
    """The upstream does not know this rental code."""

    user_message = "The provider no longer knows this rental."


class RentalRefundDenied(ProviderError):
    """The upstream refuses the refund: more than 12 hours old, or a message was received."""

    user_message = (
        "This rental can no longer be refunded: a refund is possible only within 12 hours of "
        "renting and before the first message."
    )


class RentalAlreadyRefunded(ProviderError):
    """The upstream has already refunded this rental (perhaps by an earlier, lost request)."""

    user_message = "This rental has already been refunded."


class RentalExtendFailed(ProviderError):
    """The upstream refused an extension and says it charged nothing."""

    user_message = "The rental could not be extended. You have not been charged."


class ExtendOutcomeUnknown(PurchaseOutcomeUnknown):
    """An extension was sent but its answer proves nothing: it may have been charged."""


class RefundOutcomeUnknown(ProviderError):
    """A refund was sent but its answer proves nothing. Asking again is safe: a refunded
    rental answers RentalAlreadyRefunded."""


@dataclass(frozen=True)
class UpstreamService:
    code: str
    name: str


@dataclass(frozen=True)
class UpstreamCountry:
    id: str
    name: str
    iso: str | None = None  # ISO 3166 alpha-2 when the upstream gives it; else resolved by name


@dataclass(frozen=True)
class UpstreamOffer:
    country_id: str
    cost: Decimal
    stock: int


@dataclass(frozen=True)
class CountryRef:
    """A country as a route knows it (its own id) and as ISO 3166 alpha-2 (when mapped)."""

    upstream_id: str
    iso: str | None


@dataclass(frozen=True)
class Activation:
    activation_id: str
    phone: str


class StatusKind(enum.Enum):
    WAITING = "waiting"
    CODE = "code"
    WAITING_RETRY = "waiting_retry"  # waiting for another SMS; `code` is the last one
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class ActivationStatus:
    kind: StatusKind
    code: str | None = None
    text: str | None = None


class Priority(enum.IntEnum):
    """Who goes first when the request budget is short. Lower goes first."""

    PURCHASE = 0
    POLL = 1
    INTERACTIVE = 2
    BACKGROUND = 3


class Route(Protocol):
    key: str  # short, stable, used in callback data and the database
    title: str  # shown on buttons
    account: str  # routes with the same account share an upstream balance
    currency: str  # the upstream's price currency
    rate: Decimal  # shop-currency units per upstream unit
    can_request_another: bool
    can_finish: bool
    is_sandbox: bool

    async def balance(self) -> Decimal: ...

    async def services(self) -> list[UpstreamService]: ...

    async def countries(self) -> list[UpstreamCountry]: ...

    async def offers(self, service_code: str, priority: Priority) -> list[UpstreamOffer]: ...

    async def price(self, service_code: str, country: CountryRef) -> UpstreamOffer | None:
        """The current cost and stock of one offer, fresh from upstream."""
        ...

    async def buy(
        self, service_code: str, country: CountryRef, ref: str, max_cost: Decimal | None = None
    ) -> Activation:
        """Buy a number at no more than `max_cost` (upstream currency) where the upstream can
        enforce it. Never retried: a timeout raises PurchaseOutcomeUnknown."""
        ...

    async def status(self, activation_id: str) -> ActivationStatus: ...

    async def cancel(self, activation_id: str) -> None: ...

    async def request_another(self, activation_id: str) -> None: ...

    async def finish(self, activation_id: str) -> None: ...

    async def close(self) -> None:
        """Release anything the route holds (called once at shutdown)."""
        ...


@runtime_checkable
class PairPricing(Protocol):
    """A route whose bulk `offers()` may leave out pairs it sells (SMSPool's suggested
    countries are a short list), so the catalog asks it for one pair when a customer picks
    that pair. Routes whose bulk list is complete do not implement it."""

    async def pair_offer(
        self, service_code: str, country: CountryRef, priority: Priority
    ) -> UpstreamOffer | None:
        """One service's cost and stock in one country (None: not sold there), in a single
        request at `priority`, never retried (a customer is waiting)."""
        ...
