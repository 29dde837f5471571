"""Rentals end to end: the real bot against the fake Telegram and the fake SMSPool over HTTP.

Rent, receive messages (each forwarded once, also across a crash), extend (and an extension
refused), refund (inside the window, and refused after a message), expiry with its reminder
and last message, a purchase that times out, a double click, forged buttons. Every test ends
with each balance equal to its ledger (the harness checks it at teardown, and so do we)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from shop.models import LedgerKind, RentalState
from tests.conftest import BotHarness, fund
from tests.e2e.helpers import start
from tests.fakes.smspool import FakeSMSPool
from tests.fakes.telegram import FakeUser, Message

US_7_DAYS = 2340  # 18 USD x rate 1 x 1.30 markup, in cents


@pytest.fixture
async def pool() -> AsyncIterator[FakeSMSPool]:
    fake = FakeSMSPool()
    await fake.start()
    yield fake
    await fake.stop()


def rental_settings(pool: FakeSMSPool, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "smspool_api_key": pool.api_key,
        "smspool_base_url": pool.base_url,
        "smspool_rate_limit": 6000,
        "rental_poll_seconds": 0.5,
    }
    values.update(overrides)
    return values


async def rent_to_confirm(
    user: FakeUser, kind: str = "Extendable", country: str = "United States", days: str = "7 days"
) -> Message:
    await user.send("/rent")
    home = await user.wait_for("Rent a number")
    await user.click(home, kind)
    countries = await user.wait_for("Choose a country")
    await user.click(countries, country)
    periods = await user.wait_for("For how long?")
    await user.click(periods, days)
    return await user.wait_for("Confirm your rental")


async def rent(user: FakeUser, **choice: str) -> Message:
    confirm = await rent_to_confirm(user, **choice)
    await user.click(confirm, "Confirm")
    return await user.wait_for("Rented!")


async def ready(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    admin: FakeUser,
    user: FakeUser,
    amount: str = "100",
    **overrides: Any,
) -> BotHarness:
    harness = harness_factory(**rental_settings(pool, **overrides))
    await harness.start()
    await start(user)
    await fund(admin, user, amount)
    return harness


def forwarded(user: FakeUser, text: str) -> list[Message]:
    return [m for m in user.messages if "SMS to" in m.plain and text in m.plain]


async def forwarded_in_db(harness: BotHarness) -> None:
    """Wait until every stored message is recorded as forwarded (it is sent first)."""
    assert harness.app is not None and harness.app.rentals is not None
    repo = harness.app.rentals.repo
    for _ in range(100):
        if not await repo.with_unforwarded():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("messages left unforwarded")


async def balance(harness: BotHarness, user: FakeUser) -> int:
    assert harness.app is not None
    return await harness.app.wallet.balance(user.id)


async def only_rental(harness: BotHarness, user: FakeUser) -> Any:
    assert harness.app is not None and harness.app.rentals is not None
    items, _, _ = await harness.app.rentals.page_for_user(user.id, 0, 10)
    (rental,) = items
    return rental


async def test_rent_and_three_messages_each_forwarded_once_across_a_crash(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await ready(harness_factory, pool, admin, alice)
    card = await rent(alice)
    assert "Rental #" in card.plain and "United States" in card.plain
    assert await balance(harness, alice) == 10_000 - US_7_DAYS
    (code,) = pool.rentals
    upstream = pool.rentals[code]
    assert upstream.number in card.plain.replace("+", "")

    pool.deliver_rental_message(code, "Google", "G-111111 is your code")
    first = await alice.wait_for(lambda m: "SMS to" in m.plain and "G-111111" in m.plain)
    assert "Google" in first.plain
    await forwarded_in_db(harness)  # sent and recorded: the crash comes after

    await harness.crash()
    pool.deliver_rental_message(code, None, "Second <b>message</b> & more")
    await harness.start()
    second = await alice.wait_for(lambda m: "SMS to" in m.plain and "Second" in m.plain)
    assert "Second <b>message</b> & more" in second.plain  # verbatim, escaped in HTML
    assert "&lt;b&gt;" in second.text

    pool.deliver_rental_message(code, "Bank", "Third one")
    await alice.wait_for(lambda m: "SMS to" in m.plain and "Third one" in m.plain)
    polls = pool.count("rental/retrieve_messages")
    deadline = time.monotonic() + 10
    while pool.count("rental/retrieve_messages") < polls + 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # a few more polls: nothing may be forwarded again
    for text in ("G-111111", "Second", "Third one"):
        assert len(forwarded(alice, text)) == 1, text
    # status is read before messages on every poll, as the doc asks
    polled = ("rental/retrieve_status", "rental/retrieve_messages")
    paths = [r.path for r in pool.requests if r.path in polled]
    assert paths[0] == "rental/retrieve_status"
    assert all(
        paths[i - 1] == "rental/retrieve_status"
        for i, p in enumerate(paths)
        if p == "rental/retrieve_messages"
    )

    # My rentals -> the rental -> its history
    await alice.send("/rentals")
    mine = await alice.wait_for("Your rentals")
    assert "7 days left" in mine.plain
    await alice.click(mine, "#")
    shown = await alice.wait_for("Messages: 3")
    await alice.click(shown, "Messages")
    history = await alice.wait_for("Messages of rental")
    assert "Third one" in history.plain and "G-111111" in history.plain
    await harness.check_ledger()


async def test_extend_and_an_extension_refused_is_refunded(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await ready(harness_factory, pool, admin, alice)
    card = await rent(alice)
    (code,) = pool.rentals
    expiry = pool.rentals[code].expires_at

    await alice.click(card, "Extend")
    periods = await alice.wait_for("By how many days?")
    await alice.click(periods, "+14 days")
    confirm = await alice.wait_for(lambda m: "Extend rental" in m.plain and "Price" in m.plain)
    assert "$32.50" in confirm.plain  # 25 USD x 1.30
    await alice.click(confirm, "Confirm extension")
    done = await alice.wait_for("Extended by 14 days")
    assert pool.rentals[code].expires_at == expiry + 14 * 86400
    assert await balance(harness, alice) == 10_000 - US_7_DAYS - 3250
    assert "Active (extended)" in done.plain

    pool.fail_extend_next()
    await alice.click(done, "Extend")
    periods = await alice.wait_for("By how many days?")
    await alice.click(periods, "+7 days")
    confirm = await alice.wait_for(lambda m: "Extend rental" in m.plain and "Price" in m.plain)
    await alice.click(confirm, "Confirm extension")
    refused = await alice.wait_for("was not extended")
    assert "not been charged" in refused.plain and "back on your balance" in refused.plain
    assert await balance(harness, alice) == 10_000 - US_7_DAYS - 3250
    assert pool.rentals[code].expires_at == expiry + 14 * 86400
    assert harness.app is not None and harness.app.rentals is not None
    rental = await only_rental(harness, alice)
    assert [e.state for e in await harness.app.rentals.repo.extensions(rental.id)] == [
        "done",
        "refused",
    ]
    await harness.check_ledger()


async def test_refund_inside_the_window(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await ready(harness_factory, pool, admin, alice)
    card = await rent(alice)
    (code,) = pool.rentals
    await alice.click(card, "Refund")
    sure = await alice.wait_for("Refund rental")
    await alice.click(sure, "Yes, refund")
    done = await alice.wait_for("back on your balance")
    assert "Refunded" in done.plain
    assert pool.rentals[code].refunded
    assert await balance(harness, alice) == 10_000
    rental = await only_rental(harness, alice)
    assert rental.state is RentalState.REFUNDED and rental.paid == 0
    # A second refund (a stale button) changes nothing.
    await alice.click_data(done, f"rl:{rental.id}:refundok:0:0:0")
    await asyncio.sleep(0.5)
    assert await balance(harness, alice) == 10_000
    await harness.check_ledger()


async def test_refund_refused_after_a_message(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    # A long poll period: the message reaches SMSPool before the bot has seen it, so it is
    # SMSPool's refusal that the customer hears about.
    harness = await ready(harness_factory, pool, admin, alice, rental_poll_seconds=60)
    card = await rent(alice)
    (code,) = pool.rentals
    pool.deliver_rental_message(code, "Svc", "hello")
    await alice.click(card, "Refund")
    sure = await alice.wait_for("Refund rental")
    query = await alice.click(sure, "Yes, refund")
    refusal = await alice.wait_answer(query)
    assert "can no longer be refunded" in (refusal.text or "")
    assert "TYou" not in (refusal.text or "")  # plain words, not SMSPool's
    assert not pool.rentals[code].refunded
    assert await balance(harness, alice) == 10_000 - US_7_DAYS
    await harness.check_ledger()


async def test_expiry_with_reminder_and_last_message(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await ready(harness_factory, pool, admin, alice)
    # Rented 6.5 days ago by SMSPool's clock: 12 hours left, inside the reminder's day.
    pool.clock = lambda: time.time() - 6.5 * 86400
    await rent(alice)
    (code,) = pool.rentals
    reminder = await alice.wait_for("ends on")
    assert any("Extend" in text for text in reminder.button_texts)
    pool.expire_rental(code)
    await alice.wait_for("has ended")
    await asyncio.sleep(1.5)
    assert len([m for m in alice.messages if "ends on" in m.plain]) == 1
    assert len([m for m in alice.messages if "has ended" in m.plain]) == 1
    rental = await only_rental(harness, alice)
    assert rental.state is RentalState.EXPIRED
    await harness.check_ledger()


async def test_purchase_timing_out_is_refunded_flagged_and_alerted(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await ready(harness_factory, pool, admin, alice, http_timeout_seconds=1)
    confirm = await rent_to_confirm(alice)
    pool.delay_next("purchase/rental", 3)
    await alice.click(confirm, "Confirm")
    failed = await alice.wait_for("could not be rented")
    assert "back on your balance" in failed.plain
    alert = await admin.wait_for("did not get a clear answer")
    # A readable UTC date (as the admin screens show them), not Unix seconds.
    assert re.search(r"bought at \d{1,2} \w{3} \d{4}, \d\d:\d\d UTC", alert.plain), alert.plain
    assert not re.search(r"\d{9,}", alert.plain), alert.plain
    assert await balance(harness, alice) == 10_000
    assert harness.app is not None and harness.app.rentals is not None
    rental = await harness.app.rentals.get(1)
    assert rental is not None and rental.state is RentalState.FAILED and rental.needs_attention
    await asyncio.sleep(2.5)  # SMSPool rented it after all: the purchase was sent once only
    assert pool.count("purchase/rental") == 1
    await harness.check_ledger()


async def test_double_click_on_confirm_charges_once(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await ready(harness_factory, pool, admin, alice)
    confirm = await rent_to_confirm(alice)
    pool.delay_next("purchase/rental", 0.5)
    first = await alice.click(confirm, "Confirm")
    second = await alice.click(confirm, "Confirm")
    await alice.wait_for("Rented!")
    answers = [await alice.wait_answer(q) for q in (first, second)]
    assert any("already being processed" in (a.text or "") for a in answers), answers
    await asyncio.sleep(0.5)
    assert len(pool.rentals) == 1 and pool.count("purchase/rental") == 1
    assert await balance(harness, alice) == 10_000 - US_7_DAYS
    assert harness.app is not None
    history = await harness.app.wallet.ledger.history(alice.id, 10)
    assert [e.kind for e in history].count(LedgerKind.RENTAL) == 1
    await harness.check_ledger()


async def test_forged_buttons_change_nothing(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    admin: FakeUser,
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    harness = await ready(harness_factory, pool, admin, alice)
    card = await rent(alice)
    rental = await only_rental(harness, alice)
    await start(bob)
    await fund(admin, bob, "100")
    menu = bob.messages[-1]
    # Someone else's rental: not found, as if it did not exist.
    for act in ("show", "msgs", "refundok", "ext"):
        query = await bob.click_data(menu, f"rl:{rental.id}:{act}:7:1:100")
        assert "not found" in ((await bob.wait_answer(query)).text or "").lower()
    # A lower price than the real one is never charged: the new price is shown instead.
    query = await bob.click_data(menu, "rp:1:0:7:1:abcd1234:0")
    await bob.wait_for("The price has changed")
    # A period the rental does not sell, and an offer that does not exist.
    query = await bob.click_data(menu, "rp:1:0:9:99999:abcd1234:0")
    assert "period is not available" in ((await bob.wait_answer(query)).text or "")
    query = await bob.click_data(menu, "rp:1:77:7:99999:abcd1234:0")
    assert "not offered" in ((await bob.wait_answer(query)).text or "")
    # Garbage that does not unpack.
    query = await bob.click_data(menu, "rl:-1:show:0:0:0")
    assert "no longer valid" in ((await bob.wait_answer(query)).text or "")
    assert await balance(harness, bob) == 10_000
    assert len(pool.rentals) == 1
    assert card.message_id
    await harness.check_ledger()


async def test_admin_looks_up_refunds_and_counts_rentals(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await ready(harness_factory, pool, admin, alice)
    await rent(alice)
    await rent(alice, kind="Fixed period", country="Canada")
    await admin.send("/stats")
    stats = await admin.wait_for("Stats")
    assert "Rentals total" in stats.plain and "2 rentals (2 live)" in stats.plain
    await admin.send("/rental 1")
    details = await admin.wait_for("Rental #1")
    assert "United States" in details.plain
    await admin.click(details, "Refund this rental")
    await admin.wait_for("Rental #1 refunded")
    assert await balance(harness, alice) == 10_000 - 1235  # Canada 9.50 USD x 1.30 left paid
    await admin.send("/reconcile 1")
    recon = await admin.wait_for("Reconciliation")
    assert "SMSPool rentals" in recon.plain and "1 rentals (1 live)" not in recon.plain
    assert harness.app is not None
    entries = await harness.app.admin.audit.recent(5)
    assert any(e.action == "rental_refund" for e in entries)
    await admin.send("/rental 99")
    await admin.wait_for("does not exist")
    await harness.check_ledger()


async def test_help_lists_the_rental_commands_when_rentals_are_sold(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    harness = harness_factory(**rental_settings(pool))
    await harness.start()
    await alice.send("/help")
    english = await alice.wait_for("How it works")
    assert "/rent — rent a number for days" in english.plain
    assert "/rentals — your rentals" in english.plain

    await alice.send("/language")
    screen = await alice.wait_for("The bot speaks English")
    await alice.click(screen, "Русский")
    await alice.wait_for(lambda m: "Язык бота: Русский" in m.plain)
    await alice.send("/help")
    russian = await alice.wait_for("Как это работает")
    assert "/rent — аренда номера на несколько дней" in russian.plain
    assert "/rentals — ваши аренды" in russian.plain
    await harness.stop()

    # Without SMSPool no rentals are sold: /help does not mention them.
    plain = harness_factory()
    await plain.start()
    await bob.send("/help")
    without = await bob.wait_for("How it works")
    assert "/rent" not in without.plain


US_7_DAYS_ONE_SERVICE = 1170  # 18 USD x 50% x rate 1 x 1.30 markup, in cents


def one_service_confirm(message: Message) -> bool:
    return "Confirm your rental" in message.plain and "One service only:" in message.plain


async def test_one_service_from_the_list_at_the_discount(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await ready(harness_factory, pool, admin, alice)
    confirm = await rent_to_confirm(alice)
    assert "$23.40" in confirm.plain and "Any service" in confirm.plain
    await alice.click(confirm, "One service (discount)")
    picker = await alice.wait_for(lambda m: "One service" in m.plain and "popular" in m.plain)
    # SMSPool's services (service/retrieve_all), through the catalog: none ordered yet, so
    # by name.
    assert picker.button_texts[:4] == ["Google", "Instagram", "Telegram", "WhatsApp"]
    await alice.click(picker, "WhatsApp")
    single = await alice.wait_for(one_service_confirm)
    assert "One service only: WhatsApp (half price)" in single.plain
    assert "$11.70" in single.plain

    # Back to any service: the full price again; then pick it once more and rent.
    await alice.click(single, "Any service")
    full = await alice.wait_for(
        lambda m: (
            "Confirm your rental" in m.plain and "$23.40" in m.plain and "only:" not in m.plain
        )
    )
    await alice.click(full, "One service (discount)")
    picker = await alice.wait_for(lambda m: "One service" in m.plain and "popular" in m.plain)
    await alice.click(picker, "WhatsApp")
    single = await alice.wait_for(one_service_confirm)
    await alice.click(single, "Confirm")
    await alice.wait_for("Rented!")
    (code,) = pool.rentals
    assert pool.rentals[code].service_id == "1012"  # SMSPool's WhatsApp ID was sent
    sent = [r for r in pool.requests if r.path == "purchase/rental"]
    assert sent[-1].params.get("service_id") == "1012"
    assert await balance(harness, alice) == 10_000 - US_7_DAYS_ONE_SERVICE
    rental = await only_rental(harness, alice)
    assert rental.service_id == "1012" and rental.price == US_7_DAYS_ONE_SERVICE
    await harness.check_ledger()


async def test_one_service_found_by_a_typed_name(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await ready(harness_factory, pool, admin, alice)
    confirm = await rent_to_confirm(alice, days="14 days")
    await alice.click(confirm, "One service (discount)")
    picker = await alice.wait_for(lambda m: "One service" in m.plain and "popular" in m.plain)
    await alice.click(picker, "Search by name")
    await alice.wait_for("Type the service's name")
    await alice.send("<b>nothing</b>")
    none = await alice.wait_for("Nothing matches")
    assert "<b>nothing</b>" in none.plain  # escaped, shown as typed
    await alice.send("telegrm")  # a typo
    found = await alice.wait_for("Services matching")
    assert "Telegram" in found.button_texts
    await alice.click(found, "Telegram")
    single = await alice.wait_for(one_service_confirm)
    assert "One service only: Telegram" in single.plain and "$16.25" in single.plain  # 25/2x1.3
    await alice.click(single, "Confirm")
    await alice.wait_for("Rented!")
    (code,) = pool.rentals
    assert pool.rentals[code].service_id == "1011"
    assert await balance(harness, alice) == 10_000 - 1625
    # The search ended with the pick: typed text is a number search again (one match opens).
    await alice.send("whatsapp")
    await alice.wait_for(lambda m: "WhatsApp" in m.plain and "Choose a country" in m.plain)
    await harness.check_ledger()


async def test_one_service_only_on_us_extendable_rentals(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await ready(harness_factory, pool, admin, alice)
    fixed = await rent_to_confirm(alice, kind="Fixed period")
    assert not any("One service" in text for text in fixed.button_texts)
    uk = await rent_to_confirm(alice, country="United Kingdom")
    assert not any("One service" in text for text in uk.button_texts)
    # Forged: a single service on the UK rental, an unknown service, the picker for the UK.
    query = await alice.click_data(uk, "ro:1:1:7:1")
    assert "only on US extendable" in ((await alice.wait_answer(query)).text or "")
    query = await alice.click_data(uk, "rp:1:0:7:99999:abcd1234:424242")
    assert "cannot be picked" in ((await alice.wait_answer(query)).text or "")
    query = await alice.click_data(uk, "rsv:1:1:7:0:0")
    assert "only on US extendable" in ((await alice.wait_answer(query)).text or "")
    assert not pool.rentals
    assert await balance(harness, alice) == 10_000
    await harness.check_ledger()


async def test_a_crash_during_an_extension_is_settled_at_start(
    harness_factory: Callable[..., BotHarness],
    pool: FakeSMSPool,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    # The sweeper's grace is far away (a long HTTP timeout): only the recovery at start can
    # settle the extension in time for this test.
    harness = await ready(harness_factory, pool, admin, alice, http_timeout_seconds=30)
    card = await rent(alice)
    assert len(pool.rentals) == 1
    await alice.click(card, "Extend")
    periods = await alice.wait_for("By how many days?")
    await alice.click(periods, "+14 days")
    confirm = await alice.wait_for(lambda m: "Extend rental" in m.plain and "Price" in m.plain)
    pool.delay_next("rental/extend", 2)  # SMSPool extends it after all: the outcome is unknown
    await alice.click(confirm, "Confirm extension")
    assert harness.app is not None and harness.app.rentals is not None
    repo = harness.app.rentals.repo
    rental = await only_rental(harness, alice)
    for _ in range(100):
        if [e.state for e in await repo.extensions(rental.id)] == ["pending"]:
            break
        await asyncio.sleep(0.05)
    assert await balance(harness, alice) == 10_000 - US_7_DAYS - 3250  # charged, in flight
    # Another instance starting now must not settle it: it may be this one's call in flight.
    await harness.app.rentals.recover(alone=False)
    assert [e.state for e in await repo.extensions(rental.id)] == ["pending"]

    await harness.crash()
    await harness.start()
    told = await alice.wait_for("extension of rental")
    assert "$32.50 is back on your balance" in told.plain
    alert = await admin.wait_for(lambda m: "stopped during rental/extend" in m.plain)
    assert f"Rental #{rental.id}" in alert.plain
    assert await balance(harness, alice) == 10_000 - US_7_DAYS
    assert harness.app is not None and harness.app.rentals is not None
    settled = await harness.app.rentals.repo.extensions(rental.id)
    assert [e.state for e in settled] == ["unknown"]
    flagged = await harness.app.rentals.get(rental.id)
    assert flagged is not None and flagged.needs_attention
    history = await harness.app.wallet.ledger.history(alice.id, 10)
    assert [e.kind for e in history].count(LedgerKind.RENTAL_REFUND) == 1
    assert pool.count("rental/extend") == 1  # sent once, never retried
    await harness.check_ledger()
