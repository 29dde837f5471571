"""Issue 16, find it in seconds: every way to WhatsApp in the United States (popular buttons,
A-Z pages, typed search on each screen, one typed line), in English and Russian, with typos,
no match, ambiguity, a sold-out pair and another input that a typed line must leave alone.

The real bot against the fake Bot API and FakeSMSPalm selling the tests' catalog of 193
services x 146 countries (tests/fakes/catalog.py; Abkhazia is listed under Georgia)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from shop.providers.base import Priority
from shop.services.find import FindService
from tests.conftest import BotHarness, fund
from tests.e2e.helpers import start
from tests.fakes.catalog import COUNTRIES, SERVICES, load_into_palm, palm_code, palm_country_id
from tests.fakes.smspalm import SERVER_TWO, FakeSMSPalm
from tests.fakes.telegram import FakeTelegram, FakeUser, Message

ROUTE = "SMSPalm Server 2"
ROUTES = "Choose a route"


@pytest.fixture
async def big(
    harness_factory: Callable[..., BotHarness], palm: FakeSMSPalm
) -> AsyncIterator[BotHarness]:
    """The bot selling the whole test catalog."""
    load_into_palm(palm)
    harness = harness_factory()
    await harness.start()
    yield harness


def _data_sizes(user: FakeUser) -> list[int]:
    return [
        len(data.encode())
        for message in user.messages
        for row in message.buttons
        for _, data in row
        if data is not None
    ]


async def _confirm(user: FakeUser, routes: Message) -> Message:
    """The route screen's one tap to the confirm screen."""
    assert "WhatsApp" in routes.plain and "United States" in routes.plain, routes.plain
    await user.click(routes, ROUTE)
    confirm = await user.wait_for("Confirm your purchase")
    assert "Service: WhatsApp" in confirm.plain and "United States" in confirm.plain
    return confirm


async def _next_page(user: FakeUser, page: Message) -> Message:
    before = list(page.button_texts)
    await user.click(page, "▶")
    return await user.wait_for(lambda m: bool(m.button_texts) and m.button_texts != before)


async def _services(user: FakeUser) -> Message:
    menu = await start(user)
    await user.click(menu, "Buy a number")
    return await user.wait_for("Choose a service")


async def test_popular_buttons(big: BotHarness, alice: FakeUser) -> None:
    services = await _services(alice)
    grid = services.button_texts
    assert grid[:4] == ["WhatsApp", "Telegram", "Google", "Facebook"]  # the starting list
    assert "Popular first" in services.plain and "whatsapp usa" in services.plain
    assert "🔤 All services A-Z (193)" in grid
    assert len(grid) == 20 + 2  # 20 popular, A-Z and Menu
    await alice.click(services, "WhatsApp")
    countries = await alice.wait_for("Choose a country (146)")
    assert "Type a country's name or code" in countries.plain
    labels = countries.button_texts
    assert len(labels) == 20 + 2 and "🔤 All countries A-Z (146)" in labels
    stocks = [int(label.rsplit("· ", 1)[1]) for label in labels[:20]]
    assert stocks == sorted(stocks, reverse=True)  # no orders yet: the most stocked first
    await alice.click(countries, "United States")
    await _confirm(alice, await alice.wait_for(ROUTES))  # Buy, service, country, route: 4 taps


async def test_a_to_z_pages(big: BotHarness, alice: FakeUser) -> None:
    services = await _services(alice)
    await alice.click(services, "All services A-Z")
    page = await alice.wait_for("All services A-Z (193)")
    assert page.button_texts[:3] == ["1xBet", "Adobe", "Airbnb"]
    while "WhatsApp" not in page.button_texts:
        page = await _next_page(alice, page)
    assert any(label.endswith("/10") for label in page.button_texts)
    await alice.click(page, "WhatsApp")
    countries = await alice.wait_for("Choose a country")
    await alice.click(countries, "All countries A-Z")
    page = await alice.wait_for("All countries A-Z (146)")
    names = [label.split(" · ")[0] for label in page.button_texts if " · " in label]
    assert names[0].endswith("Afghanistan") and len(names) == 8
    while not any("United States" in label for label in page.button_texts):
        page = await _next_page(alice, page)
    await alice.click(page, "United States")
    await _confirm(alice, await alice.wait_for(ROUTES))


async def test_typed_search_on_each_screen(big: BotHarness, alice: FakeUser) -> None:
    await _services(alice)
    await alice.send("whatsapp")  # the services screen searches services: one match opens it
    countries = await alice.wait_for("Choose a country")
    assert "WhatsApp" in countries.plain
    await alice.send("United States")  # the countries screen searches countries
    await _confirm(alice, await alice.wait_for(ROUTES))

    for typed in ("us", "USA", "america"):  # codes and other names, on the countries screen
        await alice.send("/buy")
        await alice.click(await alice.wait_for("Choose a service"), "WhatsApp")
        await alice.wait_for("Choose a country")
        await alice.send(typed)
        routes = await alice.wait_for(ROUTES)
        assert "United States" in routes.plain, typed


async def test_one_line(big: BotHarness, alice: FakeUser) -> None:
    await start(alice)
    for line, country in (
        ("whatsapp us", "United States"),
        ("wa usa", "United States"),
        ("telegram uk", "United Kingdom"),
        ("google germany", "Germany"),
    ):
        await alice.send(line)
        routes = await alice.wait_for(ROUTES)
        assert country in routes.plain, (line, routes.plain)
    await alice.send("whatsapp us")
    await _confirm(alice, await alice.wait_for(ROUTES))  # 1 line + 1 tap


async def test_russian_customer_types_vatsap_ssha(
    big: BotHarness, telegram: FakeTelegram, admin: FakeUser
) -> None:
    ivan = telegram.user(2001, first_name="Ivan", username="ivan", language_code="ru")
    await start_ru(ivan)
    await ivan.send("ватсап сша")
    routes = await ivan.wait_for("Выберите маршрут")
    assert "WhatsApp" in routes.plain and "США" in routes.plain
    await ivan.send("телеграм великобритания")  # longer than any callback data may be
    routes = await ivan.wait_for("Выберите маршрут")
    assert "Telegram" in routes.plain and "Великобритания" in routes.plain
    await ivan.send("/buy")
    services = await ivan.wait_for("Выберите сервис")
    assert "ватсап сша" in services.plain  # the prompt says what typing does
    await ivan.click(services, "WhatsApp")
    await ivan.wait_for("Выберите страну")
    await ivan.send("США")
    routes = await ivan.wait_for("Выберите маршрут")
    assert "США" in routes.plain


async def start_ru(user: FakeUser) -> None:
    await user.send("/start")
    await user.wait_for("👋 Привет")


async def test_typo(big: BotHarness, alice: FakeUser) -> None:
    await start(alice)
    await alice.send("whatsap usa")
    await _confirm(alice, await alice.wait_for(ROUTES))


async def test_no_match_says_so_and_keeps_the_screen(big: BotHarness, alice: FakeUser) -> None:
    await start(alice)
    await alice.send("qwertyuiop zzz")  # outside any screen: a short hint
    hint = await alice.wait_for("No service matches")
    assert "whatsapp usa" in hint.plain and hint.button_texts == ["📱 Buy a number"]

    await alice.send("/buy")
    services = await alice.wait_for("Choose a service")
    await alice.send("qwertyuiop")  # the services screen stays as it was, above the answer
    await alice.wait_for("No service matches “qwertyuiop”")
    assert alice.get(services.message_id) is services and "WhatsApp" in services.button_texts
    await alice.click(services, "WhatsApp")
    await alice.wait_for("Choose a country")
    await alice.send("atlantis")
    kept = await alice.wait_for("No country matches “atlantis”")
    assert "Choose a country" in kept.plain
    await alice.send("usa")  # still on WhatsApp's countries
    await _confirm(alice, await alice.wait_for(ROUTES))


async def test_sold_out_pair(big: BotHarness, alice: FakeUser) -> None:
    await start(alice)
    await alice.send("paypal united states")  # sold out: tests/fakes/catalog.py, sold_out()
    routes = await alice.wait_for(ROUTES)
    assert "PayPal" in routes.plain and "sold out" in " ".join(routes.button_texts)
    assert "🔔 Tell me when it's in stock" in routes.button_texts
    await alice.click(routes, "◀ Countries")
    countries = await alice.wait_for("Choose a country")
    assert not any("sold out" in label for label in countries.button_texts)
    await alice.click(countries, "All countries A-Z")
    page = await alice.wait_for("All countries A-Z")
    labels = [label for label in page.button_texts if " · " in label]
    while "▶" in page.button_texts:
        page = await _next_page(alice, page)
        labels += [label for label in page.button_texts if " · " in label]
    assert len(labels) == 146
    sold = ["sold out" in label for label in labels]
    assert sold == sorted(sold) and sum(sold) > 1  # sold-out entries sink to the end
    assert any("United States" in label and "sold out" in label for label in labels)


def _service_names(page: Message) -> list[str]:
    """The services of an A-Z page (not its pager and back buttons)."""
    pager = {"◀", "▶", " "}
    return [
        label
        for label in page.button_texts
        if label not in pager and not label.startswith("◀ ") and "/" not in label
    ]


async def _sell_out(harness: BotHarness, palm: FakeSMSPalm, name: str, *codes: str) -> None:
    """No numbers for a service upstream in these countries (none named: anywhere), and the
    catalog refresh has read its prices since."""
    palm_id = next(sid for sid, service in SERVICES if service == name)
    for index, (code, _) in enumerate(COUNTRIES):
        if code in codes or not codes:
            palm.prices[SERVER_TWO][(palm_country_id(index), palm_code(palm_id))][1] = 0
    assert harness.app is not None
    catalog = harness.app.catalog
    service = await catalog.find_service(name)
    assert service is not None
    for route in await catalog.live_routes():
        await catalog.refresh_offers(route, service.id, Priority.BACKGROUND)


async def test_sold_out_service_sinks_on_the_services_screen(
    palm: FakeSMSPalm, big: BotHarness, alice: FakeUser
) -> None:
    services = await _services(alice)
    assert services.button_texts[1] == "Telegram"  # second in the starting list
    await _sell_out(big, palm, "Telegram")
    await alice.click(services, "Telegram")
    countries = await alice.wait_for("Choose a country")
    labels = [label for label in countries.button_texts if " · " in label]
    assert labels and all(label.endswith("sold out") for label in labels)
    await alice.click(countries, "◀ Services")
    services = await alice.wait_for("Choose a service")
    popular = services.button_texts[:20]
    assert popular[0] == "WhatsApp" and popular[1] == "Google"
    assert popular[-1] == "Telegram · sold out"  # the popular block's end
    assert not any("sold out" in label for label in popular[:-1])

    await alice.click(services, "All services A-Z")
    page = await alice.wait_for("All services A-Z (193)")
    assert page.button_texts[:3] == ["1xBet", "Adobe", "Airbnb"]
    names = _service_names(page)
    while "▶" in page.button_texts:
        page = await _next_page(alice, page)
        names += _service_names(page)
    assert len(names) == 193
    assert names[-1] == "Telegram · sold out"  # after every service in stock
    assert not any("sold out" in name for name in names[:-1])
    await alice.click(page, "Telegram · sold out")
    await alice.wait_for(lambda m: "Choose a country" in m.plain and "Telegram" in m.plain)


async def test_sold_out_matches_and_recent_picks_sink(
    palm: FakeSMSPalm, big: BotHarness, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await start(admin)
    await fund(admin, alice, "5")
    for line in ("telegram usa", "whatsapp uk"):  # WhatsApp in the UK is the newest pick
        await alice.send(line)
        await alice.click(await alice.wait_for(ROUTES), ROUTE)
        await alice.click(await alice.wait_for("Confirm your purchase"), "Pay")
        await alice.wait_for("Waiting for the SMS")
    await _sell_out(big, palm, "WhatsApp", "GB")
    await _sell_out(big, palm, "PayPal")

    await alice.send("/buy")  # Buy again: the newest pick that has numbers
    labels = (await alice.wait_for("Choose a service")).button_texts
    assert labels[:3] == [
        "🔁 Buy again: Telegram 🇺🇸 · SMSPalm Server 2",
        "🕘 Telegram · 🇺🇸 United States",
        "🕘 WhatsApp · 🇬🇧 United Kingdom · sold out",
    ]

    await alice.send("pay")  # several services: sold-out ones after the others
    labels = (await alice.wait_for("Services matching “pay”")).button_texts[:-1]
    assert len(labels) > 1 and labels[-1] == "PayPal · sold out"
    assert not any("sold out" in label for label in labels[:-1])

    await alice.send("whatsapp united")  # the best few readings of a line: likewise
    labels = (await alice.wait_for("Which one do you mean")).button_texts[:-1]
    assert "WhatsApp · 🇬🇧 United Kingdom · sold out" in labels
    _sold_out_last(labels)

    await alice.send("/buy")
    await alice.click(await alice.wait_for("Choose a service"), "WhatsApp")
    await alice.wait_for("Choose a country")
    await alice.send("united")  # several countries of a service: likewise
    labels = (await alice.wait_for("Countries matching “united”")).button_texts[:-1]
    assert any("United Kingdom" in label and "sold out" in label for label in labels)
    _sold_out_last(labels)


def _sold_out_last(labels: list[str]) -> None:
    sold = ["sold out" in label for label in labels]
    assert sold == sorted(sold) and not sold[0], labels


async def test_ambiguous_input_offers_the_best_few(big: BotHarness, alice: FakeUser) -> None:
    await start(alice)
    await alice.send("whatsapp united")
    offered = await alice.wait_for("Which one do you mean")
    labels = offered.button_texts
    assert 2 <= len(labels) - 1 <= 6
    assert all(label.startswith("WhatsApp · ") for label in labels[:-1])
    await alice.click(offered, "United States")
    await _confirm(alice, await alice.wait_for(ROUTES))

    await alice.send("/buy")
    await alice.wait_for("Choose a service")
    await alice.send("pay")
    found = await alice.wait_for("Services matching “pay”")
    assert "PayPal" in found.button_texts and len(found.button_texts) <= 7
    await alice.send("/buy")
    await alice.click(await alice.wait_for("Choose a service"), "WhatsApp")
    await alice.wait_for("Choose a country")
    await alice.send("united")
    found = await alice.wait_for("Countries matching “united”")
    assert any("United Kingdom" in label for label in found.button_texts)


async def test_one_line_leaves_other_input_and_commands_alone(
    big: BotHarness, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await alice.send("/topup")
    await alice.click(await alice.wait_for("Top up"), "Other amount")
    await alice.wait_for("Send the amount")
    await alice.send("whatsapp usa")  # the amount form has it, not the buy flow
    answer = await alice.wait_for(lambda m: m.message_id != 0)
    assert ROUTES not in answer.plain
    await alice.send("5")
    await alice.wait_for("How would you like to pay")
    await alice.send("/help")
    await alice.wait_for("How it works")
    assert not any(ROUTES in m.plain for m in alice.messages)
    await start(admin)
    await fund(admin, alice, "1")  # admins' commands are commands too


async def test_popular_from_orders(
    big: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    assert big.app is not None
    find: FindService = big.app.dp["find"]
    find.min_orders, find.min_service_orders, find.popular_ttl = 2, 2, 0.0
    await start(alice)
    await start(admin)
    await fund(admin, alice, "5")
    for _ in range(2):  # Zomato in Peru, twice
        await alice.send("zomato peru")
        await alice.click(await alice.wait_for(ROUTES), ROUTE)
        await alice.click(await alice.wait_for("Confirm your purchase"), "Pay")
        await alice.wait_for("Waiting for the SMS")
    bob = telegram.user(1003, first_name="Bob", username="bob")  # a new customer
    services = await _services(bob)
    assert services.button_texts[0] == "Zomato"
    await bob.click(services, "Zomato")
    countries = await bob.wait_for("Choose a country")
    assert "Peru" in countries.button_texts[0]
    assert _data_sizes(bob) and max(_data_sizes(bob)) <= 64

    # Alice's recent pick and Buy again stay on top, above the popular list.
    await alice.send("/buy")
    mine = await alice.wait_for("Choose a service")
    assert mine.button_texts[0].startswith("🔁 Buy again: Zomato")
    assert mine.button_texts[1].startswith("🕘 Zomato")
    assert mine.button_texts[2] == "Zomato"


async def test_callback_data_fits(big: BotHarness, palm: FakeSMSPalm, alice: FakeUser) -> None:
    sizes: list[int] = []
    services = await _services(alice)
    sizes += _data_sizes(alice)
    await alice.click(services, "All services A-Z")
    await alice.wait_for("All services A-Z")
    sizes += _data_sizes(alice)
    await alice.send("whatsapp northern cyprus")  # the longest country key: x-<slug>-<hash>
    routes = await alice.wait_for(ROUTES)
    assert "Northern Cyprus" in routes.plain
    await alice.send("whatsapp united")
    await alice.wait_for("Which one do you mean")
    sizes += _data_sizes(alice)
    await alice.send("/buy")
    await alice.click(await alice.wait_for("Choose a service"), "WhatsApp")
    countries = await alice.wait_for("Choose a country")
    sizes += _data_sizes(alice)
    await alice.click(countries, "All countries A-Z")
    await alice.wait_for("All countries A-Z")
    sizes += _data_sizes(alice)
    assert len(sizes) > 60 and max(sizes) <= 64
