"""The fake Telegram Bot API, exercised through a real aiogram Bot over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandStart
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
)
from aiogram.types import Message as TgMessage
from aiogram.utils.text_decorations import html_decoration

from tests.fakes.telegram import FakeTelegram, parse_html

ALICE = 42


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    """One button per row: (text, callback_data)."""
    rows = [[InlineKeyboardButton(text=text, callback_data=data)] for text, data in buttons]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def make_bot(fake: FakeTelegram, token: str | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
    return Bot(token or fake.token, session=session)


async def eventually(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    instance = make_bot(fake)
    yield instance
    await instance.session.close()


async def test_get_me_and_wrong_token(fake: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (fake.bot_id, True, "numbot_test")

    intruder = make_bot(fake, token="999:WRONG")
    with pytest.raises(TelegramUnauthorizedError):
        await intruder.get_me()
    await intruder.session.close()


async def test_send_edit_click_answer(fake: FakeTelegram, bot: Bot) -> None:
    alice = fake.user(ALICE, "Alice")
    sent = await bot.send_message(
        ALICE,
        "<b>Pick</b> a number &amp; pay",
        parse_mode="HTML",
        reply_markup=keyboard(("Buy ⭐ 10", "buy:10"), ("Help", "help")),
    )
    assert sent.text == "Pick a number & pay"
    assert sent.entities is not None and sent.entities[0].type == "bold"
    assert sent.reply_markup is not None
    assert sent.reply_markup.inline_keyboard[0][0].callback_data == "buy:10"

    message = alice.last
    assert message is not None and message.message_id == sent.message_id
    assert message.plain == "Pick a number & pay"
    assert message.button_texts == ["Buy ⭐ 10", "Help"]
    assert message.buttons == [[("Buy ⭐ 10", "buy:10")], [("Help", "help")]]
    call = fake.calls_to("sendMessage")[0]
    assert call.params["chat_id"] == ALICE
    assert call.params["reply_markup"]["inline_keyboard"][1][0]["text"] == "Help"

    await bot.edit_message_text(
        "Choose <i>again</i>",
        chat_id=ALICE,
        message_id=sent.message_id,
        parse_mode="HTML",
        reply_markup=keyboard(("Buy ⭐ 20", "buy:20")),
    )
    assert message.edits == 1 and message.plain == "Choose again"
    assert alice.messages == [message]

    query_id = await alice.click(message, "Buy")
    assert fake.unanswered_callbacks() == [query_id]
    updates = await bot.get_updates(timeout=1)
    query = updates[-1].callback_query
    assert query is not None and query.id == query_id
    assert query.data == "buy:20" and query.from_user.id == ALICE
    assert isinstance(query.message, TgMessage) and query.message.text == "Choose again"

    await bot.answer_callback_query(query.id, text="Reserved", show_alert=True)
    answer = await alice.wait_answer(query_id, timeout=1)
    assert (answer.text, answer.show_alert) == ("Reserved", True)
    assert fake.unanswered_callbacks() == []
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)


async def test_edit_and_delete_errors(fake: FakeTelegram, bot: Bot) -> None:
    fake.user(ALICE)
    sent = await bot.send_message(ALICE, "same", reply_markup=keyboard(("A", "a")))
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "same", chat_id=ALICE, message_id=sent.message_id, reply_markup=keyboard(("A", "a"))
        )
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=ALICE, message_id=999)
    assert await bot.delete_message(ALICE, sent.message_id)
    assert fake.user(ALICE).messages == []
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(ALICE, sent.message_id)


async def test_text_validation(fake: FakeTelegram, bot: Bot) -> None:
    fake.user(ALICE)
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(777, "hi")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(ALICE, "")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(ALICE, "x" * 4097)
    assert (await bot.send_message(ALICE, "x" * 4096)).text == "x" * 4096


async def test_callback_data_is_limited_to_64_bytes(fake: FakeTelegram, bot: Bot) -> None:
    fake.user(ALICE)
    await bot.send_message(ALICE, "ok", reply_markup=keyboard(("A", "d" * 64)))
    for data in ("d" * 65, "й" * 33):  # 65 and 66 UTF-8 bytes
        with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
            await bot.send_message(ALICE, "no", reply_markup=keyboard(("A", data)))
    assert len(fake.user(ALICE).messages) == 1


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("<b>bold", "Can't find end tag"),
        ("<p>para</p>", 'Unsupported start tag "p"'),
        ("1 < 2", "Unsupported start tag"),
        ("Tom & Jerry", '"&"'),
        ("&nbsp;", '"&"'),
        ("<b>x</i>", "Unmatched end tag"),
        ("x</b>", "Unexpected end tag"),
        ("<span>x</span>", "tg-spoiler"),
        ("<b", "Unclosed start tag"),
    ],
)
async def test_malformed_html_is_rejected(
    fake: FakeTelegram, bot: Bot, text: str, detail: str
) -> None:
    fake.user(ALICE)
    with pytest.raises(TelegramBadRequest, match="can't parse entities") as error:
        await bot.send_message(ALICE, text, parse_mode="HTML")
    assert detail in error.value.message


def test_html_parser_accepts_telegram_html() -> None:
    text = (
        '<b>b</b><strong>s</strong><i>i</i><u>u</u><s>s</s><span class="tg-spoiler">x</span>'
        '<tg-spoiler>y</tg-spoiler><a href="https://t.me/a?b=1&amp;c=2">link</a><code>c</code>'
        '<pre><code class="language-python">p</code></pre><blockquote expandable>q</blockquote>'
        "&lt;&gt;&quot;&amp;&#65;&#x42; > 😀<b>z</b>"
    )
    plain, entities = parse_html(text)
    assert plain == 'bsiusxylinkcpq<>"&AB > 😀z'
    types = [entity["type"] for entity in entities]
    assert types == [
        "bold",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "spoiler",
        "text_link",
        "code",
        "pre",
        "expandable_blockquote",
        "bold",
    ]
    assert entities[7]["url"] == "https://t.me/a?b=1&c=2"
    assert entities[9]["language"] == "python"
    assert entities[-1]["offset"] == len(plain)  # not len - 1: the emoji is 2 UTF-16 units


async def test_block_flood_and_injected_failures(fake: FakeTelegram, bot: Bot) -> None:
    fake.user(ALICE)
    fake.flood("sendMessage", retry_after=3)
    with pytest.raises(TelegramRetryAfter) as flood:
        await bot.send_message(ALICE, "hi")
    assert flood.value.retry_after == 3
    assert "retry after 3" in flood.value.message
    await bot.send_message(ALICE, "hi")

    fake.fail("sendMessage", 400, "Bad Request: custom", times=2)
    for _ in range(2):
        with pytest.raises(TelegramBadRequest, match="custom"):
            await bot.send_message(ALICE, "hi")

    fake.block(ALICE)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(ALICE, "hi")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_chat_action(ALICE, "typing")
    assert [c.ok for c in fake.calls_to("sendMessage")] == [False, True, False, False, False]


async def test_long_polling_wakes_on_push_and_confirms(fake: FakeTelegram, bot: Bot) -> None:
    alice = fake.user(ALICE, "Alice", username="alice")
    started = time.monotonic()
    assert await bot.get_updates(timeout=0) == []
    assert time.monotonic() - started < 1

    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    own = await alice.send("/buy 5")
    updates = await asyncio.wait_for(poll, 2)
    message = updates[0].message
    assert message is not None and message.text == "/buy 5"
    assert message.message_id == own.message_id and message.from_user is not None
    assert message.entities is not None and message.entities[0].type == "bot_command"
    assert message.entities[0].length == 4
    assert fake.pending_updates == 1

    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == []
    assert fake.pending_updates == 0


async def test_wait_for_cursor_and_timeout(fake: FakeTelegram, bot: Bot) -> None:
    alice = fake.user(ALICE)
    first = await bot.send_message(ALICE, "Searching…")
    second = await bot.send_message(ALICE, "Searching…")
    assert (await alice.wait_for("Searching")).message_id == first.message_id
    assert (await alice.wait_for("Searching")).message_id == second.message_id
    await bot.edit_message_text("Found +1 555", chat_id=ALICE, message_id=first.message_id)
    found = await alice.wait_for(lambda m: m.plain.startswith("Found"))
    assert found.message_id == first.message_id and found.edits == 1
    with pytest.raises(AssertionError, match="Found \\+1 555"):
        await alice.wait_for("never sent", timeout=0.2)


async def test_document_upload_is_multipart(fake: FakeTelegram, bot: Bot) -> None:
    admin = fake.user(1, "Admin")
    upload = BufferedInputFile(b"id,phone\n1,+1555\n", filename="orders.csv")
    sent = await bot.send_document(1, upload, caption="<b>Export</b>", parse_mode="HTML")
    assert sent.document is not None and sent.document.file_name == "orders.csv"
    assert sent.caption == "Export"
    stored = admin.last
    assert stored is not None and stored.kind == "document" and stored.plain == "Export"
    assert stored.file is not None and stored.file.content == b"id,phone\n1,+1555\n"
    assert fake.calls_to("sendDocument")[0].params["document"].startswith("attach://")


async def test_commands_are_stored_per_scope(fake: FakeTelegram, bot: Bot) -> None:
    fake.user(ALICE)
    scope = BotCommandScopeChat(chat_id=ALICE)
    await bot.set_my_commands([BotCommand(command="admin", description="Admin panel")], scope)
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    assert fake.commands_for({"type": "chat", "chat_id": ALICE}) == [
        {"command": "admin", "description": "Admin panel"}
    ]
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad-Name", description="x")])


async def test_star_payment_and_refund(fake: FakeTelegram, bot: Bot) -> None:
    alice = fake.user(ALICE)
    await bot.send_invoice(
        ALICE,
        title="Top up",
        description="100 stars",
        payload="topup:100",
        currency="XTR",
        prices=[LabeledPrice(label="Top up", amount=100)],
    )
    invoice = alice.last
    assert invoice is not None and invoice.invoice is not None
    assert invoice.invoice["total_amount"] == 100

    paying = asyncio.create_task(alice.pay(invoice, timeout=3))
    updates = await bot.get_updates(timeout=2)
    query = updates[-1].pre_checkout_query
    assert query is not None and query.invoice_payload == "topup:100"
    await bot.answer_pre_checkout_query(query.id, ok=True)
    result = await paying
    assert result.ok and result.charge_id is not None

    updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=2)
    paid = updates[-1].message
    assert paid is not None and paid.successful_payment is not None
    assert paid.successful_payment.telegram_payment_charge_id == result.charge_id

    assert await bot.refund_star_payment(ALICE, result.charge_id)
    with pytest.raises(TelegramBadRequest, match="CHARGE_ALREADY_REFUNDED"):
        await bot.refund_star_payment(ALICE, result.charge_id)


async def test_json_and_urlencoded_bodies(fake: FakeTelegram) -> None:
    fake.user(ALICE)
    url = f"{fake.base_url}/bot{fake.token}/sendMessage"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"chat_id": ALICE, "text": "123"}) as response:
            body = await response.json()
        assert response.status == 200 and body["result"]["text"] == "123"
        async with http.post(url, data={"chat_id": str(ALICE), "text": ""}) as response:
            body = await response.json()
        assert response.status == 400
        assert body == {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: message text is empty",
        }
    assert fake.calls_to("sendMessage")[0].params == {"chat_id": ALICE, "text": "123"}


async def test_dispatcher_polling_end_to_end(fake: FakeTelegram, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: TgMessage) -> None:
        name = html_decoration.quote(message.chat.first_name or "")
        await message.answer(
            f"Hello, <b>{name}</b>!", parse_mode="HTML", reply_markup=keyboard(("Ping", "ping"))
        )

    @dp.callback_query(F.data == "ping")
    async def ping(query: CallbackQuery) -> None:
        await query.answer("pong")
        assert isinstance(query.message, TgMessage)
        await query.message.edit_text("pong!")

    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    bob = fake.user(7, "Bob <3")
    await bob.send("/start")
    greeting = await bob.wait_for("Hello, Bob <3!")
    query_id = await bob.click(greeting, "Ping")
    assert (await bob.wait_answer(query_id)).text == "pong"
    assert (await bob.wait_for("pong!")) is greeting
    assert greeting.buttons == []
    await eventually(lambda: fake.pending_updates == 0)

    started = time.monotonic()
    await dp.stop_polling()
    await asyncio.wait_for(polling, 5)
    assert time.monotonic() - started < 3
    assert fake.calls_to("getMe") and len(fake.calls_to("getUpdates")) >= 2
    assert fake.server_errors == []
