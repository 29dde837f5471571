"""The Telegram adapter of the top-up service's `StarsGateway` port: it asks the Bot API to
refund a Stars charge and reports the answer; `TopupService` decides what it means."""

from __future__ import annotations

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest

from shop.services.topups import RefundAnswer


class TelegramStars:
    """The Stars side of the Bot API for the top-up service (`StarsGateway`)."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def refund(self, user_id: int, charge_id: str) -> tuple[RefundAnswer, str]:
        try:
            await self.bot.refund_star_payment(
                user_id=user_id, telegram_payment_charge_id=charge_id
            )
        except TelegramBadRequest as exc:
            if "CHARGE_ALREADY_REFUNDED" in exc.message:
                return RefundAnswer.ALREADY_REFUNDED, exc.message
            return RefundAnswer.REFUSED, exc.message
        except TelegramAPIError as exc:  # network, 5xx, flood wait: worth asking again
            return RefundAnswer.NO_ANSWER, f"{type(exc).__name__}: {exc.message}"
        return RefundAnswer.REFUNDED, ""
