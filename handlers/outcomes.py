"""How each update ended: counted for the metrics, and told to the webhook that delivered it.

`UpdateOutcomes` is an outer middleware on the Dispatcher's updates. It sits inside aiogram's
error middleware, so it sees a handler's exception before the error router turns it into an
apology: an `AppError` is an expected answer (the user was told why), anything else is a
failure. The webhook passes an `Outcome` with the update (`feed_update(..., update_outcome=...)`)
and answers 500 when it failed, so that Telegram delivers the update again; long polling passes
none, and nothing changes there.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject, Update
from aiogram.types.update import UpdateTypeLookupError

from shop import metrics
from shop.errors import AppError

OUTCOME_KEY = "update_outcome"


@dataclass
class Outcome:
    """What the webhook learns about the update it fed: the unexpected error, if one came."""

    failure: BaseException | None = None

    @property
    def failed(self) -> bool:
        return self.failure is not None


class UpdateOutcomes(BaseMiddleware):
    """Counts every update by type and outcome; marks the webhook's `Outcome` on a failure."""

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
        except Exception as exc:
            outcome = "error"
            marker = data.get(OUTCOME_KEY)
            if isinstance(marker, Outcome):
                marker.failure = exc
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
