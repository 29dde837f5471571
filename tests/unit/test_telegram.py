"""bot.telegram: ReplaceText sends exactly what editMessageText sends, and skips the answer."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson
import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.methods import EditMessageText, TelegramMethod
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    MessageEntity,
)

from bot.telegram import ReplaceText, json_dumps

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
