"""bot.speedups: aiogram objects bound to their bot in one step still know their bot,
middleware chains built without `functools.wraps` run as aiogram's do, and the lighter UNSET
check drops what aiogram's drops."""

from __future__ import annotations

import types
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.dispatcher.middlewares.manager import MiddlewareManager
from aiogram.methods import AnswerCallbackQuery
from aiogram.methods.base import TelegramMethod
from aiogram.types import TelegramObject, Update
from aiogram.types.base import UNSET
from pydantic import BaseModel, PrivateAttr

from bot.speedups import (
    AIOGRAM_REMOVE_UNSET,
    AIOGRAM_WRAP_MIDDLEWARES,
    _remove_unset,
    _wrap_middlewares,
    apply_speedups,
    bind_bots_directly,
    lighten_middleware_chains,
    lighten_unset_check,
)
from tests.unit.test_telegram import CALLBACK_UPDATE, TOKEN, Recorder


def telegram_objects(model: BaseModel) -> list[BaseModel]:
    """`model` and every model nested in its fields."""
    found = [model]
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value if isinstance(value, list) else [value]
        for item in items:
            for inner in item if isinstance(item, list) else [item]:
                if isinstance(inner, BaseModel):
                    found.extend(telegram_objects(inner))
    return found


def test_parsed_objects_know_their_bot() -> None:
    apply_speedups()
    bot = Bot(TOKEN)
    update = Update.model_validate(CALLBACK_UPDATE, context={"bot": bot})
    objects = telegram_objects(update)
    assert len(objects) >= 8  # update, query, user, message, chat, user, keyboard, button
    for obj in objects:
        assert obj.__pydantic_private__ == {"_bot": bot}, type(obj)
        assert obj.bot is bot  # type: ignore[attr-defined]
    query = update.callback_query
    assert query is not None
    assert query.model_copy().bot is bot
    assert update == Update.model_validate(CALLBACK_UPDATE, context={"bot": bot})


def test_objects_without_context_have_no_bot_until_bound() -> None:
    apply_speedups()
    plain = Update.model_validate(CALLBACK_UPDATE)
    assert all(obj.__pydantic_private__ == {"_bot": None} for obj in telegram_objects(plain))
    method = AnswerCallbackQuery(callback_query_id="42", text="ok")
    assert method.bot is None
    bot = Bot(TOKEN)
    assert method.as_(bot).bot is bot
    assert method.__pydantic_private__ == {"_bot": bot}


def test_binding_is_idempotent_and_leaves_other_private_attributes_to_pydantic() -> None:
    class Noted(TelegramObject):
        """An object with a private attribute of its own besides `_bot`."""

        text: str
        _note: str = PrivateAttr(default="kept")

    apply_speedups()
    assert bind_bots_directly() == 0
    bot = Bot(TOKEN)
    noted = Noted.model_validate({"text": "hi"}, context={"bot": bot})
    assert noted.__pydantic_private__ == {"_note": "kept", "_bot": bot}


def test_the_bot_is_read_from_the_private_attributes() -> None:
    apply_speedups()
    bot, other = Bot(TOKEN), Bot("654321:ABCDEFabcdef")
    query = Update.model_validate(CALLBACK_UPDATE, context={"bot": bot}).callback_query
    assert query is not None
    assert query._bot is bot and query.bot is bot
    query.as_(other)  # written through pydantic, read back directly
    assert query.bot is other and query.__pydantic_private__ == {"_bot": other}
    object.__setattr__(query, "__pydantic_private__", {})
    with pytest.raises(AttributeError):
        _ = query._bot
    assert getattr(query, "_bot", None) is None


async def test_a_bound_query_answers_through_its_bot() -> None:
    apply_speedups()
    session = Recorder({"ok": True, "result": True})
    bot = Bot(TOKEN, session=session)
    update = Update.model_validate(CALLBACK_UPDATE, context={"bot": bot})
    assert update.callback_query is not None
    assert await update.callback_query.answer("Done") is True
    assert session.sent == [{"callback_query_id": "42", "text": "Done"}]


# -- middleware chains ------------------------------------------------------------------------


def test_the_installed_aiogram_is_the_one_the_chains_were_written_against() -> None:
    """Fails after an aiogram upgrade that changes `wrap_middlewares`: read the new one, and
    update `_wrap_middlewares` and its hash (or drop it)."""
    assert lighten_middleware_chains() is True
    assert lighten_middleware_chains() is True


def recording_manager(calls: list[str]) -> MiddlewareManager:
    manager = MiddlewareManager()
    for name in ("first", "second", "third"):

        def middleware(handler: Any, event: Any, data: dict[str, Any], name: str = name) -> Any:
            calls.append(f"{name} in")
            data[name] = len(calls)
            result = handler(event, data)
            calls.append(f"{name} out")
            return result

        manager.register(middleware)
    return manager


@pytest.mark.parametrize("wrap", [AIOGRAM_WRAP_MIDDLEWARES, _wrap_middlewares])
def test_a_chain_runs_in_registration_order_down_to_the_handler(wrap: Any) -> None:
    calls: list[str] = []

    def handler(event: str, **data: Any) -> tuple[str, dict[str, Any]]:
        calls.append("handler")
        return event, data

    chain = wrap(recording_manager(calls), handler)
    assert chain("event", {"given": 0}) == (
        "event",
        {"given": 0, "first": 1, "second": 2, "third": 3},
    )
    assert calls == [
        "first in", "second in", "third in", "handler", "third out", "second out", "first out"
    ]  # fmt: skip


def test_a_manager_still_reads_as_its_list() -> None:
    apply_speedups()
    manager = recording_manager([])
    items = manager._middlewares
    assert list(manager) == items
    assert list(reversed(manager)) == items[::-1]
    assert (len(manager), manager[0], manager[-1], list(manager[1:])) == (
        3, items[0], items[-1], items[1:]
    )  # fmt: skip


async def test_a_dispatcher_runs_outer_then_inner_middlewares_around_the_handler() -> None:
    apply_speedups()
    calls: list[str] = []
    dp = Dispatcher()
    router = Router()
    dp.include_router(router)

    def tracer(name: str) -> Any:
        async def middleware(handler: Any, event: TelegramObject, data: dict[str, Any]) -> Any:
            calls.append(name)
            data[name] = True
            return await handler(event, data)

        return middleware

    dp.update.outer_middleware(tracer("update outer"))
    dp.callback_query.outer_middleware(tracer("dp outer"))
    dp.callback_query.middleware(tracer("dp inner"))
    router.callback_query.outer_middleware(tracer("router outer"))
    router.callback_query.middleware(tracer("router inner"))

    @router.callback_query()
    async def handler(query: Any, **data: Any) -> str:
        calls.append("handler")
        names = ("update outer", "dp outer", "router outer", "dp inner", "router inner")
        assert all(data[name] for name in names)
        return "handled"

    bot = Bot(TOKEN, session=Recorder({"ok": True, "result": True}))
    update = Update.model_validate(CALLBACK_UPDATE, context={"bot": bot})
    assert await dp.feed_update(bot, update) == "handled"
    assert calls == [
        "update outer", "dp outer", "router outer", "dp inner", "router inner", "handler"
    ]  # fmt: skip


# -- the UNSET check --------------------------------------------------------------------------


def test_the_installed_aiogram_is_the_one_the_unset_check_was_written_against() -> None:
    """Fails after an aiogram upgrade that changes `remove_unset`: read the new one, and
    update `_remove_unset` and its hashes (or drop it)."""
    assert lighten_unset_check() == 2
    assert lighten_unset_check() == 2


VALUES: list[Any] = [
    {},
    {"id": 5, "first_name": "Ann"},
    {"text": UNSET, "show_alert": True, "url": None},
    {"parse_mode": UNSET, "text": UNSET},
    "not a dict",
    None,
    [("id", 5)],
]


@pytest.mark.parametrize("owner", [TelegramObject, TelegramMethod])
@pytest.mark.parametrize("values", VALUES)
def test_the_unset_check_keeps_and_drops_what_aiogram_s_does(owner: type, values: Any) -> None:
    function = owner.__dict__["remove_unset"].__func__
    aiogram_s = types.FunctionType(AIOGRAM_REMOVE_UNSET[owner], function.__globals__)
    assert _remove_unset(owner, values) == aiogram_s(owner, values)


def test_objects_built_with_unset_get_their_defaults() -> None:
    apply_speedups()
    query = AnswerCallbackQuery(callback_query_id="1", text=UNSET, show_alert=True)
    assert (query.text, query.show_alert) == (None, True)
    update = Update.model_validate(CALLBACK_UPDATE)
    assert update.callback_query is not None
    assert update.callback_query.from_user.first_name == "Ann"
