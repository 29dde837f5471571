"""How each update ended, counted for the metrics (long polling and webhook alike).

`UpdateOutcomes` is an outer middleware on the Dispatcher's updates. It sits inside aiogram's
error middleware, so it sees a handler's exception before the error router turns it into an
apology: an `AppError` is an expected answer (the user was told why, `refused`), anything else
an `error`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject, Update
from aiogram.types.update import UpdateTypeLookupError

from shop import metrics
from shop.errors import AppError


class UpdateOutcomes(BaseMiddleware):
    """Counts every update by type and outcome, with the time it took."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        kind = _kind(event)
        started = time.perf_counter()
        outcome = "cancelled"  # unless it ends otherwise: cancelled at shutdown
        try:
            result = await handler(event, data)
        except AppError:
            outcome = "refused"
            raise
        except Exception:
            outcome = "error"
            raise
        else:
            outcome = "unhandled" if result is UNHANDLED else "handled"
            return result
        finally:
            metrics.update_handled(kind, outcome, time.perf_counter() - started)


def _kind(event: TelegramObject) -> str:
    """The update's type (`message`, `callback_query`...); `unknown` for one aiogram does not
    know (it skips those)."""
    if not isinstance(event, Update):
        return type(event).__name__
    try:
        return event.event_type
    except UpdateTypeLookupError:
        return "unknown"
