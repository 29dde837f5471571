"""How the bot talks to the Bot API: the HTTP session, the one method we send without
reading its answer, and a cheaper way for aiogram's objects to learn their bot."""

from __future__ import annotations

import inspect
from typing import Any

import orjson
from aiogram.client.context_controller import BotContextController
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import EditMessageText


def json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_session(api_url: str) -> AiohttpSession:
    """aiogram's aiohttp session on `api_url`, with orjson for the JSON it reads and writes:
    every click costs an encoded keyboard and a decoded answer, and orjson does both several
    times faster than the standard library."""
    return AiohttpSession(
        api=TelegramAPIServer.from_base(api_url), json_loads=orjson.loads, json_dumps=json_dumps
    )


class ReplaceText(EditMessageText):
    """editMessageText whose answer (the edited message, echoed with its keyboard) is not
    parsed into a `Message`: redrawing a screen never reads it, and parsing it was a fifth of
    the cost of a click. Errors are still raised as usual."""

    __returning__ = Any  # type: ignore[assignment]

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """What aiogram's session serializes (it calls this with `warnings=False` only).

        The keyboard comes out as finished JSON (pydantic writes it in one call), which the
        session sends as is, being a string; as a dict it was walked key by key (every
        button's dozen empty fields) and then encoded: about 70 µs a screen, against 9. The
        other fields are handed over as they are: the session turns the nested objects
        (link preview options, entities) into JSON itself, and pydantic's own dump with
        `exclude` took 19 µs, against 1. The same text reaches Telegram either way."""
        if self.reply_markup is None or kwargs.keys() - {"warnings"}:
            return super().model_dump(**kwargs)
        data = dict(self)
        data["reply_markup"] = self.reply_markup.model_dump_json(exclude_none=True)
        return data


def _bind_bot(self: BotContextController, context: Any, /) -> None:
    """What pydantic's wrapped `BotContextController.model_post_init` ends with, in one step:
    the private attributes are `{"_bot": <the bot in the context, or None>}`."""
    bot = context.get("bot") if context else None
    if len(type(self).__private_attributes__) == 1:
        object.__setattr__(self, "__pydantic_private__", {"_bot": bot})
    else:
        # A subclass made later with private attributes of its own: pydantic wraps this hook
        # in theirs, which has set those up already.
        private = self.__pydantic_private__
        assert private is not None
        private["_bot"] = bot


def bind_bots_directly() -> int:
    """Give every aiogram object (each `Update`, `User`, `Message`, button and Bot API method)
    a one-step `model_post_init`; returns how many classes got it. Idempotent.

    pydantic wraps `model_post_init` of a model with private attributes, in each subclass
    anew: it first walks the private attributes through their defaults, then aiogram's own
    hook stores the bot through `BaseModel.__setattr__`. That is about 8 µs for each of the
    six objects in one callback update, and for each button and method the bot builds: half
    the cost of parsing an update. Only classes whose hook is still that unchanged chain and
    whose only private attribute is `_bot` are touched, so an aiogram release that adds
    another one keeps pydantic's path, slower but right."""
    original = inspect.unwrap(BotContextController.model_post_init)
    if original is _bind_bot:
        original = _ORIGINAL_HOOK[0]
    else:
        _ORIGINAL_HOOK[:] = [original]
    patched = 0
    pending: list[type[BotContextController]] = [BotContextController]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        hook = cls.__dict__.get("model_post_init")
        if hook is None or hook is _bind_bot:
            continue
        if set(cls.__private_attributes__) == {"_bot"} and inspect.unwrap(hook) is original:
            cls.model_post_init = _bind_bot  # type: ignore[method-assign, assignment]
            patched += 1
    return patched


_ORIGINAL_HOOK: list[Any] = []
