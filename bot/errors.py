"""The application's error hierarchy. One error handler maps these to user messages."""

from __future__ import annotations


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
