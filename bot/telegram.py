"""How the bot talks to the Bot API: the HTTP session, the keyboard that keeps its JSON, and
the one method we send without reading its answer."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar, Self

import orjson
from aiogram.client.default import Default
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import EditMessageText
from aiogram.methods.base import Response, TelegramMethod, TelegramType
from aiogram.types import InlineKeyboardMarkup, TelegramObject

if TYPE_CHECKING:
    from aiogram import Bot


# Distinct default objects whose JSON `LeanCodec` keeps (one per bot; tests make many bots).
DEFAULTS_KEPT = 64


def json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class LeanCodec(BaseSession):
    """aiogram's encoding of requests and decoding of answers, with the common cases cut
    short; what reaches Telegram and what comes back are the same.

    * A request's scalar fields (a chat id, a text, a flag) skip the eight type checks of
      `prepare_value` that only nested values need: they were a third of a screen's cost
      in the session.
    * A successful answer is validated by a `Response[...]` model looked up once per
      result type (`response_model`): pydantic's lookup of a generic model builds and
      hashes its key on every call. Anything else, every error answer among it, takes
      aiogram's own path, with aiogram's exceptions. (pydantic's JSON parser, tried for
      typed answers, was no faster than orjson on real updates, which share no strings the
      way a benchmark's repeated one does.)"""

    _response_models: ClassVar[dict[Any, type[Response[Any]]]] = {}
    _defaults_written: ClassVar[dict[int, tuple[TelegramObject, Any]]] = {}

    @classmethod
    def response_model(cls, returning: Any) -> type[Response[Any]]:
        """`Response[returning]`, kept. pydantic caches its generic models only weakly: after
        a garbage collection one nobody held was rebuilt, milliseconds in someone's click.
        `build_app` makes the busy ones before serving."""
        model = cls._response_models.get(returning)
        if model is None:
            model = cls._response_models[returning] = Response[returning]  # type: ignore[valid-type]
        return model

    def prepare_value(
        self, value: Any, bot: Bot, files: dict[str, Any], _dumps_json: bool = True
    ) -> Any:
        kind = value.__class__
        if value is None or kind is str:
            return value
        if kind is int or kind is bool:
            return self.json_dumps(value) if _dumps_json else value
        if kind is Default:
            resolved = bot.default[value.name]
            if _dumps_json and isinstance(resolved, TelegramObject):
                return self._default_json(resolved, bot)
            return self.prepare_value(resolved, bot=bot, files=files, _dumps_json=_dumps_json)
        return super().prepare_value(value, bot=bot, files=files, _dumps_json=_dumps_json)

    def _default_json(self, value: TelegramObject, bot: Bot) -> Any:
        """A default object of the bot's (the link preview options every screen carries),
        written once: it was a fifth of a screen's encoding. Kept by identity, with the
        object itself, so a new bot's defaults are never mistaken for an old one's."""
        cached = self._defaults_written.get(id(value))
        if cached is None or cached[0] is not value:
            if len(self._defaults_written) >= DEFAULTS_KEPT:
                self._defaults_written.clear()
            written = super().prepare_value(value, bot=bot, files={})
            cached = self._defaults_written[id(value)] = (value, written)
        return cached[1]

    def check_response(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        status_code: int,
        content: str,
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if HTTPStatus.OK <= status_code <= HTTPStatus.IM_USED:
            model = self.response_model(returning)
            try:
                response = model.model_validate(self.json_loads(content), context={"bot": bot})
            except Exception:  # aiogram's path below raises the right error for it
                pass
            else:
                if response.ok:
                    return response  # type: ignore[return-value]
        return super().check_response(
            bot=bot, method=method, status_code=status_code, content=content
        )


class BotSession(LeanCodec, AiohttpSession):
    """aiogram's aiohttp session with the lean codec."""


def make_session(api_url: str) -> BotSession:
    """The Bot API session on `api_url`, with orjson for the JSON it reads and writes: every
    click costs an encoded keyboard and a decoded answer, and orjson does both several
    times faster than the standard library."""
    return BotSession(
        api=TelegramAPIServer.from_base(api_url), json_loads=orjson.loads, json_dumps=json_dumps
    )


class Keyboard(InlineKeyboardMarkup):
    """An inline keyboard that keeps the JSON it is sent as. A menu kept between catalog
    changes is sent on every click that opens it, and writing its JSON (13 µs for a dozen
    buttons) was the largest part of a redraw. Like every Telegram object it is frozen; its
    rows must not be changed after it is sent.

    The JSON is kept under `_json` in pydantic's private dict, next to `_bot`, without
    being declared: a declared private attribute costs every keyboard built pydantic's
    slower set-up (8 µs). So a keyboard that was sent does not compare equal to an
    unsent twin, as one bound to another bot does not."""

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; one with changed rows writes its own JSON."""
        copied = super().model_copy(update=update, deep=deep)
        if update:
            private = copied.__pydantic_private__
            assert private is not None
            private["_json"] = None
        return copied

    def as_json(self) -> str:
        private = self.__pydantic_private__
        assert private is not None
        text = private.get("_json")
        if text is None:
            text = private["_json"] = self.model_dump_json(exclude_none=True)
        return text


def keyboard_json(markup: InlineKeyboardMarkup) -> str:
    """The JSON Telegram gets for `markup` (kept by a `Keyboard`)."""
    if isinstance(markup, Keyboard):
        return markup.as_json()
    return markup.model_dump_json(exclude_none=True)


class ReplaceText(EditMessageText):
    """editMessageText whose answer (the edited message, echoed with its keyboard) is not
    parsed into a `Message`: redrawing a screen never reads it, and parsing it was a fifth of
    the cost of a click. Errors are still raised as usual."""

    __returning__ = Any  # type: ignore[assignment]

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """What aiogram's session serializes (it calls this with `warnings=False` only).

        The keyboard comes out as finished JSON (`keyboard_json`), which the session sends
        as is, being a string; as a dict it was walked key by key (every button's dozen
        empty fields) and then encoded: about 70 µs a screen. The other fields are handed
        over as they are: the session turns the nested objects (link preview options,
        entities) into JSON itself, and pydantic's own dump with `exclude` took 19 µs. The
        same text reaches Telegram either way."""
        if self.reply_markup is None or kwargs.keys() - {"warnings"}:
            return super().model_dump(**kwargs)
        data = dict(self.__dict__)  # the fields; `dict(self)` walks them in Python
        if self.__pydantic_extra__:
            data.update(self.__pydantic_extra__)
        data["reply_markup"] = keyboard_json(self.reply_markup)
        return data
