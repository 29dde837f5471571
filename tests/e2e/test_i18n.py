"""English and Russian: every screen renders in the user's language, and /language switches it.

A Russian-speaking user (Telegram `language_code="ru"`) and an English one walk the same screens
side by side; each Russian screen must contain Cyrillic, differ from its English twin, and hold
no Latin words other than names that are the same in every language (services, routes, the
sender, commands).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tests.conftest import BotHarness, fund, sms_settings
from tests.e2e.helpers import buy_to_confirm
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.smspm import FakeSMSPM
from tests.fakes.telegram import FakeTelegram, FakeUser, Message

CYRILLIC = re.compile(r"[А-Яа-яЁё]")
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]")
COMMAND = re.compile(r"/[a-z_]+")
# Names that stay as they are in every language: services, routes, data, units.
NAMES = {
    "WhatsApp",
    "SMSPalm",
    "Server",
    "SMS",
    "SMSPM",
    "com",
    "GSM",
    "UCS",
    "Sandbox",
    "Ivan",
    "Alice",
    "English",  # each language is named in itself on the /language screen
}


@dataclass(frozen=True)
class Screen:
    text: str
    buttons: tuple[str, ...]

    @classmethod
    def of(cls, message: Message) -> Screen:
        return cls(message.plain, tuple(message.button_texts))


# What each language's user taps and waits for, screen by screen.
EN = {
    "hi": "👋 Hi",
    "buy": "Buy a number",
    "services": "Choose a service",
    "countries": "Choose a country",
    "country": "United States",
    "routes": "Choose a route",
    "confirm": "Confirm your purchase",
    "pay": "Pay",
    "card": "Waiting for the SMS",
    "code": "code for",
    "orders": "Your orders",
    "balance": "Your balance",
    "help": "How it works",
    "language": "The bot speaks",
    "credited": "was added to your balance",
    "sms": "Send SMS",
    "sms_text": "Now send the text",
    "sms_body": "Hello",
    "sms_confirm": "Confirm your SMS",
    "sms_send": "Send for",
    "sms_status": "SMS #",
    "cancel": "Cancel",
    "cancelled": "SMS cancelled",
}
RU = {
    "hi": "👋 Привет",
    "buy": "Купить номер",
    "services": "Выберите сервис",
    "countries": "Выберите страну",
    "country": "США",
    "routes": "Выберите маршрут",
    "confirm": "Подтвердите покупку",
    "pay": "Оплатить",
    "card": "Ждём SMS",
    "code": "Код WhatsApp",
    "orders": "Ваши заказы",
    "balance": "Ваш баланс",
    "help": "Как это работает",
    "language": "Язык бота",
    "credited": "зачислено",
    "sms": "Отправить SMS",
    "sms_text": "Теперь пришлите текст",
    "sms_body": "Привет",
    "sms_confirm": "Подтвердите SMS",
    "sms_send": "Отправить за",
    "sms_status": "SMS #",
    "cancel": "Отмена",
    "cancelled": "SMS отменена",
}


async def _walk(
    user: FakeUser, admin: FakeUser, palm: FakeSMSPalm, say: dict[str, str]
) -> dict[str, Screen]:
    """Every customer screen once, in the user's language; returns them by name."""
    screens: dict[str, Screen] = {}

    async def see(name: str, message: Message) -> Message:
        screens[name] = Screen.of(message)
        return message

    await user.send("/start")
    menu = await see("menu", await user.wait_for(say["hi"]))
    await fund(admin, user, "10")
    await see("credited", await user.wait_for(say["credited"]))

    await user.click(menu, say["buy"])
    services = await see("services", await user.wait_for(say["services"]))
    await user.click(services, "WhatsApp")
    countries = await see("countries", await user.wait_for(say["countries"]))
    await user.click(countries, say["country"])
    routes = await see("routes", await user.wait_for(say["routes"]))
    await user.click(routes, "SMSPalm Server 2")
    confirm = await see("confirm", await user.wait_for(say["confirm"]))
    await user.click(confirm, say["pay"])
    await see("card", await user.wait_for(say["card"]))
    activation = next(a for a in palm.activations.values() if a.ref and not a.codes)
    palm.deliver_code(activation.id, "739214")
    await see("code", await user.wait_for(say["code"]))

    await user.send("/orders")
    await see("orders", await user.wait_for(say["orders"]))
    await user.send("/balance")
    await see("balance", await user.wait_for(say["balance"]))
    await user.send("/help")
    await see("help", await user.wait_for(say["help"]))
    await user.send("/language")
    await see("language", await user.wait_for(say["language"]))
    await user.send("/nonsense")
    await see("unknown", await user.wait_for(lambda m: "/help" in m.plain and not m.buttons))

    await user.send("/sms")
    prompt = await see("sms", await user.wait_for(say["sms"]))
    await user.send("56789045")
    await see("sms_invalid", await user.wait_for(lambda m: "56789045" in m.plain))
    await user.send("+372 5678 9045, +372 5100 0101")
    await see("sms_text", await user.wait_for(say["sms_text"]))
    await user.send(say["sms_body"])
    sms_confirm = await see("sms_confirm", await user.wait_for(say["sms_confirm"]))
    await user.click(sms_confirm, say["sms_send"])
    await see("sms_status", await user.wait_for(say["sms_status"]))
    await user.send("/sms")
    prompt = await user.wait_for(say["sms"])
    await user.click(prompt, say["cancel"])
    await see(
        "sms_cancelled",
        await user.wait_for(
            lambda m: m.message_id == prompt.message_id and say["cancelled"] in m.plain
        ),
    )
    return screens


def _leftovers(text: str, names: set[str]) -> set[str]:
    """Latin words in a Russian text that are not names or commands: untranslated English."""
    return set(LATIN_WORD.findall(COMMAND.sub(" ", text))) - names


async def test_russian_user_sees_every_screen_in_russian(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    palm: FakeSMSPalm,
    telegram: FakeTelegram,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    # Two users walk every screen quickly: the flood limit is not under test here.
    harness = harness_factory(**sms_settings(smspm), throttle_per_second=1000, throttle_burst=1000)
    await harness.start()
    ivan = telegram.user(2001, first_name="Ivan", username="ivan", language_code="ru")

    assert harness.app is not None
    catalog = harness.app.catalog
    data = [route.title for route in catalog.routes.values()]
    first = await catalog.services()
    for number in range(first.pages):
        data += [service.name for service in (await catalog.services("", number)).items]
    names = NAMES | {word for text in data for word in LATIN_WORD.findall(text)}

    english = await _walk(alice, admin, palm, EN)
    russian = await _walk(ivan, admin, palm, RU)

    assert english.keys() == russian.keys()
    for name, screen in russian.items():
        twin = english[name]
        assert CYRILLIC.search(screen.text), (name, screen.text)
        assert screen.text != twin.text, name
        assert not _leftovers(screen.text, names), (name, screen.text)
        for button, english_button in zip(screen.buttons, twin.buttons, strict=True):
            assert not _leftovers(button, names), (name, button)
            if _leftovers(english_button, names):
                assert button != english_button, (name, button)
    assert "🌐 Язык" in russian["menu"].buttons
    assert "Русский" in russian["language"].text and "✅ Русский" in russian["language"].buttons
    assert "English" in russian["language"].buttons  # each language in its own name
    assert "Соединённые" not in russian["confirm"].text and "США" in russian["confirm"].text
    assert "739214" in russian["code"].text

    # The menu commands exist in Russian too (Telegram picks them by the user's language).
    russian_commands = telegram.commands_for({"type": "default"}, "ru")
    descriptions = {c["command"]: c["description"] for c in russian_commands}
    assert descriptions["buy"] == "Купить номер" and descriptions["language"] == "Язык"
    english_commands = telegram.commands_for({"type": "default"})
    assert {c["command"]: c["description"] for c in english_commands}["buy"] == "Buy a number"
    await harness.check_ledger()


async def test_language_menu_switches_and_is_remembered(
    running: BotHarness, telegram: FakeTelegram, alice: FakeUser
) -> None:
    await alice.send("/start")
    menu = await alice.wait_for("👋 Hi")
    await alice.click(menu, "Language")
    screen = await alice.wait_for("The bot speaks English")
    assert screen.button_texts == ["✅ English", "Русский", "◀ Menu"]

    await alice.click(screen, "Русский")
    switched = await alice.wait_for(
        lambda m: m.message_id == screen.message_id and "Язык бота: Русский" in m.plain
    )
    assert switched.button_texts == ["English", "✅ Русский", "◀ Меню"]  # re-rendered at once
    await alice.click(switched, "Меню")
    menu = await alice.wait_for(
        lambda m: m.message_id == screen.message_id and "Привет, Alice" in m.plain
    )
    assert "📱 Купить номер" in menu.button_texts

    # Remembered: a new message, and after a restart, still in Russian.
    await running.restart()
    await alice.send("/help")
    await alice.wait_for("Как это работает")

    await alice.send("/language")
    screen = await alice.wait_for("Язык бота")
    await alice.click(screen, "English")
    await alice.wait_for(
        lambda m: m.message_id == screen.message_id and "The bot speaks English" in m.plain
    )
    await alice.send("/start")
    await alice.wait_for("👋 Hi, Alice")


async def test_forged_language_is_refused(
    running: BotHarness, telegram: FakeTelegram, alice: FakeUser
) -> None:
    await alice.send("/language")
    screen = await alice.wait_for("The bot speaks English")
    query = await alice.click_data(screen, "lg:xx")
    answer = await alice.wait_answer(query)
    assert answer.text == "This language is not available."
    await alice.send("/start")
    await alice.wait_for("👋 Hi, Alice")


async def test_alerts_and_notices_use_each_recipients_language(
    running: BotHarness, palm: FakeSMSPalm, telegram: FakeTelegram, admin: FakeUser
) -> None:
    """An English customer's purchase fails upstream (NO_BALANCE): the customer reads why in
    English, the owner (who chose Russian) gets the alert in Russian."""
    ivan = telegram.user(2001, first_name="Ivan", username="ivan", language_code="ru")
    alice = telegram.user(1001, first_name="Alice", username="alice")
    await alice.send("/start")
    await alice.wait_for("👋 Hi")
    await ivan.send("/start")
    await ivan.wait_for("👋 Привет")
    await fund(admin, alice, "1")
    await fund(admin, ivan, "1")
    await ivan.wait_for("зачислено $1.00")  # sent during the admin's update, in Ivan's language

    await admin.send("/language")
    screen = await admin.wait_for("The bot speaks")
    await admin.click(screen, "Русский")
    await admin.wait_for(lambda m: m.message_id == screen.message_id and "Язык бота" in m.plain)

    palm.balance = palm.balance.__class__("1.00")  # our upstream account is empty
    confirm = await buy_to_confirm(alice)
    await alice.click(confirm, "Pay")
    failed = await alice.wait_for("$0.33 is back on your balance")
    assert "temporarily unavailable" in failed.plain
    alert = await admin.wait_for("NO_BALANCE")
    assert "недостаточно средств" in alert.plain and "SMSPalm" in alert.plain
