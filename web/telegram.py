"""The Telegram webhook: Telegram POSTs each update to `/telegram/webhook` on our listener.

An update is handled before it is answered, so a 200 means "done", never "received": a crash
before the answer leaves Telegram to deliver it again. The answers:

* 401: the `X-Telegram-Bot-Api-Secret-Token` header is missing or wrong (compared as bytes, in
  constant time); nothing is read or done.
* 503: this instance is starting or stopping, or the update is being handled elsewhere right
  now (see `web.updates`): Telegram delivers it again later.
* 400: a body that is no update (only a sender that knows the secret gets this far).
* 200: handled now, or handled before (a repeated `update_id`).
* 500: handling failed unexpectedly (an error other than the expected `AppError`s): the claim
  is released and Telegram's next delivery handles it again. Where money is involved the
  handlers are idempotent (a payment is credited once per charge).

aiogram's error router answers a failed handler with an apology and `feed_update` returns
normally, so the failure is learnt from `FailureWatch`, an outer update middleware inside
aiogram's error middleware that sees the exception first and marks the `Outcome` the webhook
passed with the update.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import TelegramObject, Update
from aiohttp import web
from pydantic import ValidationError

from shop import metrics
from shop.errors import AppError
from web.health import Readiness
from web.updates import Claim, Seen, UpdateClaims

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = b"x-telegram-bot-api-secret-token"
OUTCOME_KEY = "webhook_outcome"  # the Outcome's name among the update's data


@dataclass
class Outcome:
    """What the webhook learns about the update it fed: the unexpected error, if one came."""

    failure: BaseException | None = None

    @property
    def failed(self) -> bool:
        return self.failure is not None


class FailureWatch(BaseMiddleware):
    """Outer update middleware: marks the webhook's `Outcome` when a handler fails
    unexpectedly (an `AppError` is an expected answer). Updates from elsewhere carry no
    `Outcome` and pass untouched."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        try:
            return await handler(event, data)
        except AppError:
            raise
        except Exception as exc:
            outcome = data.get(OUTCOME_KEY)
            if isinstance(outcome, Outcome):
                outcome.failure = exc
            raise


class TelegramWebhook:
    """The aiohttp handler of `WEBHOOK_PATH`, feeding the Dispatcher one update per request.
    `FailureWatch` must be an outer middleware of the Dispatcher's updates."""

    def __init__(
        self,
        dp: Dispatcher,
        bot: Bot,
        secret: str,
        claims: UpdateClaims,
        readiness: Readiness,
    ) -> None:
        self.dp = dp
        self.bot = bot
        self.secret = secret  # what setWebhook is given as secret_token
        self._secret = secret.encode("ascii")  # the settings allow only A-Z a-z 0-9 _ -
        self.claims = claims
        self.readiness = readiness

    async def handle(self, request: web.Request) -> web.Response:
        response = await self._handle(request)
        metrics.webhook_answered(response.status)
        return response

    def _secret_ok(self, request: web.Request) -> bool:
        """The secret header, exactly once, equal to ours byte for byte."""
        values = [value for name, value in request.raw_headers if name.lower() == SECRET_HEADER]
        return len(values) == 1 and hmac.compare_digest(values[0], self._secret)

    async def _handle(self, request: web.Request) -> web.Response:
        if not self._secret_ok(request):
            return web.Response(status=401, text="unauthorized")
        if not self.readiness.serving:
            return web.Response(status=503, text="not serving")
        try:
            data = json.loads(await request.read())
            update_id = data["update_id"]
            if not isinstance(update_id, int) or isinstance(update_id, bool):
                raise TypeError("update_id is not an integer")
            update = Update.model_validate(data, context={"bot": self.bot})
        except (ValueError, KeyError, TypeError, RecursionError, ValidationError) as exc:
            log.warning("Webhook body is not an update: %s", type(exc).__name__)
            return web.Response(status=400, text="not an update")
        try:
            claim = await self.claims.claim(update_id)
        except Exception:
            log.exception("Update %s could not be claimed", update_id)
            return web.Response(status=503, text="try again")
        if claim.seen is Seen.DONE:
            return web.Response(text="ok")
        if claim.seen is Seen.BUSY:
            return web.Response(status=503, text="in progress")
        handled = False
        try:
            handled = await self._feed(update)
        finally:
            await self._settle(claim, handled)
        if not handled:
            return web.Response(status=500, text="failed")
        return web.Response(text="ok")

    async def _feed(self, update: Update) -> bool:
        """Handle the update; False when it failed (Telegram should deliver it again)."""
        outcome = Outcome()
        try:
            result = await self.dp.feed_update(self.bot, update, **{OUTCOME_KEY: outcome})
            if isinstance(result, TelegramMethod):  # a handler's reply as a method: send it
                await self.bot(result)
        except Exception:
            log.exception("Update %s failed; Telegram will deliver it again", update.update_id)
            return False
        if outcome.failed:
            log.warning(
                "Update %s failed (%s); Telegram will deliver it again",
                update.update_id,
                type(outcome.failure).__name__,
            )
            return False
        return True

    async def _settle(self, claim: Claim, handled: bool) -> None:
        try:
            if handled:
                await self.claims.done(claim)
            else:
                await self.claims.release(claim)
        except Exception:
            # Handled but not marked (a retry would handle it again: the handlers are
            # idempotent where money is involved), or not released (the claim lapses).
            log.exception("Claim of update %s not settled", claim.update_id)
