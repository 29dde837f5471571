"""The application's error hierarchy. One error handler maps these to user messages.

A `user_message` class attribute is English and is extracted for translation by its name; it
is translated when shown (`shop.i18n.user_text`). A message given when raising is translated
there, inside the update (`raise NotFound(_("Order #{id} not found.").format(id=...))`).
"""

from __future__ import annotations

import math
import time

from shop.i18n import _, format_date


class AppError(Exception):
    """An expected failure with a message that is safe to show the user."""

    user_message = "Something went wrong. Please try again."

    def __init__(self, user_message: str | None = None) -> None:
        super().__init__(user_message or self.user_message)
        if user_message:
            self.user_message = user_message


class InsufficientFunds(AppError):
    user_message = "Not enough balance. Top up your wallet and try again."


class NotFound(AppError):
    """Also raised for another user's objects: we never confirm that they exist."""

    user_message = "Not found."


class QuoteExpired(AppError):
    user_message = "This price has expired. Please pick the route again."


class InvalidInput(AppError):
    user_message = "That input was not understood."


class InvalidState(AppError):
    user_message = "This order can no longer do that."


class TryAgainLater(AppError):
    user_message = "Please try again in a moment."


class BuyPaused(AppError):
    """Too many orders cancelled by the customer in a short time: buying waits until `until`."""

    def __init__(self, until: int) -> None:
        minutes = max(1, math.ceil((until - time.time()) / 60))
        super().__init__(
            _(
                "You cancelled several orders in a short time, so buying is paused for a "
                "while. You can buy again in {minutes} min ({time} UTC)."
            ).format(minutes=minutes, time=format_date(until))
        )
        self.until = until
