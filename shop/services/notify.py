"""How services tell people things, without knowing about Telegram."""

from __future__ import annotations

from typing import Protocol

from shop.i18n import LazyText
from shop.models import Order, OrderCard, OrderCode


class Notifier(Protocol):
    async def code_received(self, order: Order, code: OrderCode) -> bool:
        """Send a code to the customer. False when it should be tried again later."""
        ...

    async def order_changed(self, card: OrderCard) -> None:
        """Refresh the customer's order card (state, codes, buttons)."""
        ...

    async def order_closed(self, card: OrderCard, refunded: int) -> None:
        """Refresh the card of an order that ended and, when it ended without a code, tell
        the customer what was refunded."""
        ...

    async def balance_credited(self, user_id: int, amount: int, balance: int) -> None: ...

    async def stars_refunded(self, user_id: int, amount: int, stars: str, balance: int) -> None:
        """Tell a customer their Stars came back and the wallet was debited `amount`."""
        ...

    async def alert_admins(self, text: str | LazyText) -> None:
        """A plain-text alert for the shop owner(s); a `LazyText` is shown in each one's
        language (build it with `shop.i18n.lazy`)."""
        ...
