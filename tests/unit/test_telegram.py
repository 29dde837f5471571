"""bot.telegram: ReplaceText sends exactly what editMessageText sends, and skips the answer;
the lean codec sends and reads what aiogram's does; a Keyboard keeps its JSON."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson
import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageText,
    GetUpdates,
    SendMessage,
    SendPhoto,
    TelegramMethod,
)
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    MessageEntity,
)
from pydantic import BaseModel

from bot.telegram import Keyboard, LeanCodec, ReplaceText, json_dumps, keyboard_json

TOKEN = "123456:ABCDEFabcdef"

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


PREVIEW = "link_preview_options"
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


# -- the lean codec ------------------------------------------------------------------------------


class LeanRecorder(LeanCodec, Recorder):
    """The same recorder, encoding and decoding with `LeanCodec`."""


def bots(answer: dict[str, Any]) -> tuple[Bot, Bot]:
    """A bot on aiogram's codec and one on the lean codec, with the shop's defaults."""
    default = DefaultBotProperties(parse_mode="HTML", link_preview_is_disabled=True)
    return (
        Bot(TOKEN, session=Recorder(answer), default=default),
        Bot(TOKEN, session=LeanRecorder(answer), default=default),
    )


def sent(bot: Bot) -> list[dict[str, Any]]:
    session = bot.session
    assert isinstance(session, Recorder)
    return session.sent


MESSAGE: dict[str, Any] = {"message_id": 7, "date": 0, "chat": {"id": 5, "type": "private"}}

REQUESTS: list[TelegramMethod[Any]] = [
    SendMessage(chat_id=5, text="<b>1.30 USD</b> & more"),
    SendMessage(chat_id="@shop", text="x", reply_markup=keyboard(), disable_notification=True),
    SendMessage(
        chat_id=5, text="x", parse_mode=None, link_preview_options=NESTED["link_preview_options"]
    ),
    SendMessage(chat_id=5, text="x", entities=NESTED["entities"], protect_content=False),
    EditMessageText(chat_id=5, message_id=7, text="x", reply_markup=Keyboard(inline_keyboard=[])),
    AnswerCallbackQuery(callback_query_id="42", text="Done", show_alert=True, cache_time=0),
    SendPhoto(chat_id=5, photo="file-id", caption="c", show_caption_above_media=False),
]


def outcome(result: Any) -> Any:
    """A result in a form comparable across bots (objects carry the bot they came through)."""
    return result.model_dump() if isinstance(result, BaseModel) else result


@pytest.mark.parametrize("method", REQUESTS, ids=lambda m: m.__api_method__)
async def test_the_lean_codec_sends_what_aiogram_sends(method: TelegramMethod[Any]) -> None:
    answer = {"ok": True, "result": True if isinstance(method, AnswerCallbackQuery) else MESSAGE}
    plain_bot, lean_bot = bots(answer)
    for _ in range(2):  # the second time, the bot's defaults come from the lean codec's store
        assert outcome(await plain_bot(method)) == outcome(await lean_bot(method))
    assert len(sent(lean_bot)) == 2
    assert sent(lean_bot) == sent(plain_bot)


async def test_each_bot_s_own_defaults_are_sent() -> None:
    """Written defaults are kept by the object's identity: a second bot with other defaults
    gets its own, even in the same session class."""
    for option in ("is_disabled", "prefer_small_media", "is_disabled"):
        default = DefaultBotProperties(**{f"link_preview_{option}": True})
        bot = Bot(TOKEN, session=LeanRecorder({"ok": True, "result": MESSAGE}), default=default)
        await bot(SendMessage(chat_id=5, text="x"))
        (form,) = sent(bot)
        assert orjson.loads(form["link_preview_options"]) == {option: True}


def body(answer: dict[str, Any]) -> str:
    return orjson.dumps(answer).decode()


SEND = SendMessage(chat_id=5, text="x")
ANSWERS: list[tuple[TelegramMethod[Any], int, str]] = [
    (AnswerCallbackQuery(callback_query_id="1"), 200, '{"ok":true,"result":true}'),
    (AnswerCallbackQuery(callback_query_id="1"), 200, ""),
    (GetUpdates(), 200, body({"ok": True, "result": [CALLBACK_UPDATE]})),
    (ReplaceText(chat_id=5, message_id=7, text="x"), 200, body({"ok": True, "result": MESSAGE})),
    (SEND, 200, body({"ok": True, "result": MESSAGE})),
    (SEND, 400, body({"ok": False, "error_code": 400, "description": "Bad Request: no chat"})),
    (SEND, 403, body({"ok": False, "error_code": 403, "description": "Forbidden: blocked"})),
    (SEND, 429, body({"ok": False, "error_code": 429, "description": "Too Many Requests",
                      "parameters": {"retry_after": 3}})),
    (SEND, 502, "<html><body>502 Bad Gateway</body></html>"),
    (SEND, 200, "<html><body>maintenance</body></html>"),
    (SEND, 200, '{"ok":true,"result":"not a message"}'),
    (SEND, 200, '{"ok":false,"error_code":400,"description":"odd"}'),
]  # fmt: skip


@pytest.mark.parametrize(("method", "status", "content"), ANSWERS)
def test_the_lean_codec_reads_what_aiogram_reads(
    method: TelegramMethod[Any], status: int, content: str
) -> None:
    plain_bot, lean_bot = bots({})
    outcomes = []
    for bot in (plain_bot, lean_bot):
        try:
            response = bot.session.check_response(
                bot=bot, method=method, status_code=status, content=content
            )
        except Exception as exc:
            outcomes.append((type(exc), str(exc)))
        else:
            outcomes.append((response.ok, response.result))
    assert outcomes[0][0] is outcomes[1][0]
    if isinstance(outcomes[0][0], bool):
        assert outcomes[0] == outcomes[1]
        result = outcomes[1][1]
        if isinstance(result, list):  # parsed updates know their bot
            assert all(update.bot is lean_bot for update in result)
    else:
        assert outcomes[0][1].replace(repr(plain_bot), "") == outcomes[1][1].replace(
            repr(lean_bot), ""
        )


# -- keyboards that keep their JSON ---------------------------------------------------------------


def test_a_keyboard_keeps_the_json_it_is_sent_as() -> None:
    plain = keyboard()
    kept = Keyboard(inline_keyboard=plain.inline_keyboard)
    expected = plain.model_dump_json(exclude_none=True)
    assert keyboard_json(plain) == expected
    assert keyboard_json(kept) == expected
    assert keyboard_json(kept) is keyboard_json(kept)  # written once
    changed = kept.model_copy(update={"inline_keyboard": plain.inline_keyboard[:1]})
    assert orjson.loads(keyboard_json(changed)) == {
        "inline_keyboard": [orjson.loads(expected)["inline_keyboard"][0]]
    }
    assert keyboard_json(kept.model_copy()) == expected


async def test_replace_text_sends_a_kept_keyboard_as_written() -> None:
    plain_bot, lean_bot = bots({"ok": True, "result": MESSAGE})
    kept = Keyboard(inline_keyboard=keyboard().inline_keyboard)
    await plain_bot(EditMessageText(chat_id=5, message_id=7, text="x", reply_markup=keyboard()))
    for _ in range(2):
        await lean_bot(ReplaceText(chat_id=5, message_id=7, text="x", reply_markup=kept))
    (expected,) = sent(plain_bot)
    first, second = sent(lean_bot)
    assert first == second
    assert {**first, "reply_markup": None} == {**expected, "reply_markup": None}
    assert orjson.loads(first["reply_markup"]) == orjson.loads(expected["reply_markup"])
