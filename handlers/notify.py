"""The Telegram side of `shop.services.notify.Notifier`: codes, order cards, notices, alerts.

These run outside an update (jobs, webhooks), so each text is rendered in its recipient's
language: their /language choice, else their Telegram language.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
)

from handlers.buy.screens import in_stock_keyboard
from handlers.orders.screens import code_message, order_card, order_closed_text, order_keyboard
from handlers.rentals.screens import (
    ended_text,
    extension_failed_text,
    failed_text,
    forwarded_message,
    reminder_keyboard,
    reminder_text,
)
from handlers.sms.screens import sms_status
from handlers.ui import esc, place
from shop.i18n import LazyText, _, i18n, locale_of
from shop.models import (
    Country,
    Order,
    OrderCard,
    OrderCode,
    OrderStatus,
    Rental,
    RentalMessage,
    Service,
    SmsMessage,
    SmsSend,
)
from shop.money import Currency
from shop.services.users import UserService

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 30
ATTEMPTS = 3


class TelegramNotifier:
    def __init__(
        self,
        bot: Bot,
        users: UserService,
        currency: Currency,
        admin_ids: Iterable[int],
    ) -> None:
        self.bot = bot
        self.users = users
        self.currency = currency
        self.admin_ids = sorted(admin_ids)

    async def _send(self, user_id: int, call: Callable[[], Awaitable[object]]) -> bool:
        """Run a Bot API call, honouring flood limits; False if it should be retried later."""
        for _attempt in range(ATTEMPTS):
            try:
                await call()
                return True
            except TelegramRetryAfter as exc:
                if exc.retry_after > MAX_RETRY_AFTER:
                    return False
                await asyncio.sleep(exc.retry_after)
            except TelegramForbiddenError:
                log.info("User %s blocked the bot", user_id)
                await self.users.blocked_bot(user_id)
                return True  # nothing more we can do; the code stays in their history
            except TelegramBadRequest as exc:
                if "message is not modified" in exc.message:
                    return True
                log.warning("Telegram refused a message to %s: %s", user_id, exc.message)
                return True
            except TelegramNetworkError as exc:
                log.warning("Telegram unreachable for %s: %s", user_id, exc)
                return False
        return False

    async def _locale(self, user_id: int) -> str:
        return locale_of(await self.users.get(user_id))

    async def code_received(self, order: Order, code: OrderCode) -> bool:
        with i18n.use_locale(await self._locale(order.user_id)):
            text = code_message(order, code)
        return await self._send(order.user_id, lambda: self.bot.send_message(order.user_id, text))

    async def order_changed(self, card: OrderCard) -> None:
        order = card.order
        if order.chat_id is None or order.message_id is None:
            return
        with i18n.use_locale(await self._locale(order.user_id)):
            text = order_card(card, self.currency)
            markup = order_keyboard(card)
        chat_id, message_id = order.chat_id, order.message_id
        await self._send(
            order.user_id,
            lambda: self.bot.edit_message_text(
                text=text, chat_id=chat_id, message_id=message_id, reply_markup=markup
            ),
        )

    async def order_closed(self, card: OrderCard, refunded: int) -> None:
        await self.order_changed(card)
        order = card.order
        if order.status in (OrderStatus.EXPIRED, OrderStatus.FAILED, OrderStatus.CANCELLED):
            with i18n.use_locale(await self._locale(order.user_id)):
                text = order_closed_text(order, refunded, self.currency)
            await self._send(order.user_id, lambda: self.bot.send_message(order.user_id, text))

    async def sms_changed(self, send: SmsSend, messages: list[SmsMessage]) -> bool:
        if send.chat_id is None or send.message_id is None:
            return True
        with i18n.use_locale(await self._locale(send.user_id)):
            text, markup = sms_status(send, messages, self.currency)
        chat_id, message_id = send.chat_id, send.message_id
        return await self._send(
            send.user_id,
            lambda: self.bot.edit_message_text(
                text=text, chat_id=chat_id, message_id=message_id, reply_markup=markup
            ),
        )

    async def in_stock(self, user_id: int, service: Service, country: Country) -> None:
        with i18n.use_locale(await self._locale(user_id)):
            text = _("🔔 <b>{service}</b> numbers for {country} are in stock again.").format(
                service=esc(service.name), country=place(country)
            )
            markup = in_stock_keyboard(service.id, country.code)
        await self._send(
            user_id, lambda: self.bot.send_message(user_id, text, reply_markup=markup)
        )

    async def balance_credited(self, user_id: int, amount: int, balance: int) -> None:
        with i18n.use_locale(await self._locale(user_id)):
            text = _("💰 {amount} was added to your balance. Balance: <b>{balance}</b>").format(
                amount=self.currency.format(amount), balance=self.currency.format(balance)
            )
        await self._send(user_id, lambda: self.bot.send_message(user_id, text))

    async def referral_earned(
        self, inviter_id: int, bonus: int, balance: int, invitee_id: int
    ) -> None:
        with i18n.use_locale(await self._locale(inviter_id)):
            text = _(
                "👥 Your referral topped up: +{bonus} credited. Balance: <b>{balance}</b>"
            ).format(bonus=self.currency.format(bonus), balance=self.currency.format(balance))
        await self._send(inviter_id, lambda: self.bot.send_message(inviter_id, text))

    async def stars_refunded(self, user_id: int, amount: int, stars: str, balance: int) -> None:
        with i18n.use_locale(await self._locale(user_id)):
            text = _(
                "↩️ Your top-up of {amount} was refunded: {stars} ⭐ returned, {amount} debited. "
                "Balance: <b>{balance}</b>"
            ).format(
                amount=self.currency.format(amount),
                stars=esc(stars),
                balance=self.currency.format(balance),
            )
        await self._send(user_id, lambda: self.bot.send_message(user_id, text))

    async def payment_returned(self, user_id: int, stars: int) -> None:
        with i18n.use_locale(await self._locale(user_id)):
            text = _(
                "↩️ Your payment of {stars} ⭐ could not be used for a top-up, so it was "
                "returned to you."
            ).format(stars=stars)
        await self._send(user_id, lambda: self.bot.send_message(user_id, text))

    # -- rentals -----------------------------------------------------------------------------

    async def rental_message(self, rental: Rental, message: RentalMessage) -> bool:
        """One forwarded SMS, its own chat message; False to try again later."""
        with i18n.use_locale(await self._locale(rental.user_id)):
            text = forwarded_message(rental, message)
        chat = rental.chat_id or rental.user_id
        return await self._send(rental.user_id, lambda: self.bot.send_message(chat, text))

    async def rental_reminder(self, rental: Rental) -> None:
        with i18n.use_locale(await self._locale(rental.user_id)):
            text = reminder_text(rental)
            markup = reminder_keyboard(rental)
        chat = rental.chat_id or rental.user_id
        await self._send(
            rental.user_id, lambda: self.bot.send_message(chat, text, reply_markup=markup)
        )

    async def rental_ended(self, rental: Rental) -> None:
        with i18n.use_locale(await self._locale(rental.user_id)):
            text = ended_text(rental)
        chat = rental.chat_id or rental.user_id
        await self._send(rental.user_id, lambda: self.bot.send_message(chat, text))

    async def rental_failed(self, rental: Rental, refunded: int) -> None:
        with i18n.use_locale(await self._locale(rental.user_id)):
            text = failed_text(rental, refunded, self.currency)
        chat = rental.chat_id or rental.user_id
        await self._send(rental.user_id, lambda: self.bot.send_message(chat, text))

    async def rental_extension_failed(self, rental: Rental, days: int, refunded: int) -> None:
        with i18n.use_locale(await self._locale(rental.user_id)):
            text = extension_failed_text(rental, days, refunded, self.currency)
        chat = rental.chat_id or rental.user_id
        await self._send(rental.user_id, lambda: self.bot.send_message(chat, text))

    async def alert_admins(self, text: str | LazyText) -> None:
        """A plain-text alert to every admin, each in their own language (a `LazyText` is
        translated per admin; a `str` is sent as it is)."""
        for admin_id in self.admin_ids:
            with i18n.use_locale(await self._locale(admin_id)):
                body = "⚠️ " + esc(str(text))
            await self._send(
                admin_id,
                lambda admin_id=admin_id, body=body: self.bot.send_message(  # type: ignore[misc]
                    admin_id, body
                ),
            )
