"""bot.telegram: ReplaceText sends exactly what editMessageText sends, and skips the answer;
aiogram objects bound to their bot in one step still know their bot."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson
import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.methods import AnswerCallbackQuery, EditMessageText, TelegramMethod
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    MessageEntity,
    TelegramObject,
    Update,
)
from pydantic import BaseModel, PrivateAttr

from bot.telegram import ReplaceText, bind_bots_directly, json_dumps

TOKEN = "123456:ABCDEFabcdef"


class Recorder(BaseSession):
    """Serializes like aiogram's aiohttp session (`build_form_data`) and answers `answer`."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(json_loads=orjson.loads, json_dumps=json_dumps)
        self.answer = answer
        self.sent: list[dict[str, Any]] = []

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[Any],
        timeout: int | None = None,  # noqa: ASYNC109
    ) -> Any:
        form: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files={})
            if prepared:
                form[key] = prepared
        self.sent.append(form)
        content = orjson.dumps(self.answer).decode()
        return self.check_response(bot=bot, method=method, status_code=200, content=content).result

    async def close(self) -> None:
        return None

    async def stream_content(self, *args: Any, **kwargs: Any) -> AsyncGenerator[bytes, None]:
        yield b""


def keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="🇺🇸 AT&T <Verify> · $1.30", callback_data="r:1:US:x")],
            [InlineKeyboardButton(text="⬅️ Back", callback_data="s:1:0")],
        ]
    )


NESTED: dict[str, Any] = {
    "link_preview_options": LinkPreviewOptions(is_disabled=True, url="https://e.x/?a=1&b=<2>"),
    "entities": [MessageEntity(type="bold", offset=0, length=2)],
    "parse_mode": None,
}


@pytest.mark.parametrize("extra", [{}, NESTED], ids=["defaults", "nested objects"])
async def test_replace_text_sends_what_edit_message_text_sends(extra: dict[str, Any]) -> None:
    message = {"message_id": 7, "date": 0, "chat": {"id": 5, "type": "private"}, "text": "x"}
    session = Recorder({"ok": True, "result": message})
    bot = Bot(
        TOKEN,
        session=session,
        default=DefaultBotProperties(parse_mode="HTML", link_preview_is_disabled=True),
    )
    fields = {"chat_id": 5, "message_id": 7, "text": "<b>Hi</b> ✓", "reply_markup": keyboard()}
    fields.update(extra)
    plain = await bot(EditMessageText(**fields))
    quick = await bot(ReplaceText(**fields))
    expected, got = session.sent
    assert got == expected
    assert orjson.loads(got["reply_markup"]) == orjson.loads(expected["reply_markup"])
    assert plain.message_id == 7  # a parsed Message ...
    assert quick["message_id"] == 7  # ... and the raw answer, not parsed


async def test_replace_text_without_keyboard() -> None:
    session = Recorder({"ok": True, "result": True})
    bot = Bot(TOKEN, session=session)
    await bot(EditMessageText(chat_id=5, message_id=7, text="plain"))
    await bot(ReplaceText(chat_id=5, message_id=7, text="plain"))
    assert session.sent[0] == session.sent[1]


CALLBACK_UPDATE: dict[str, Any] = {
    "update_id": 7,
    "callback_query": {
        "id": "42",
        "from": {"id": 5, "is_bot": False, "first_name": "Ann"},
        "chat_instance": "ci5",
        "data": "s:1",
        "message": {
            "message_id": 9,
            "date": 1_700_000_000,
            "chat": {"id": 5, "type": "private"},
            "from": {"id": 123456, "is_bot": True, "first_name": "Numbot"},
            "text": "Pick a service",
            "reply_markup": {"inline_keyboard": [[{"text": "WhatsApp", "callback_data": "s:1"}]]},
        },
    },
}


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
    bind_bots_directly()
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
    bind_bots_directly()
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

    bind_bots_directly()
    assert bind_bots_directly() == 0
    bot = Bot(TOKEN)
    noted = Noted.model_validate({"text": "hi"}, context={"bot": bot})
    assert noted.__pydantic_private__ == {"_note": "kept", "_bot": bot}


async def test_a_bound_query_answers_through_its_bot() -> None:
    bind_bots_directly()
    session = Recorder({"ok": True, "result": True})
    bot = Bot(TOKEN, session=session)
    update = Update.model_validate(CALLBACK_UPDATE, context={"bot": bot})
    assert update.callback_query is not None
    assert await update.callback_query.answer("Done") is True
    assert session.sent == [{"callback_query_id": "42", "text": "Done"}]
