"""Every handler and filter of the router tree runs on the event loop.

aiogram runs a plain callable (a bare `F...` magic filter, a `State`, a sync function) through
`asyncio.to_thread`, a worker-thread round trip per update that reaches it."""

from __future__ import annotations

import asyncio

import pytest
from aiogram import Dispatcher, F, Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.types import CallbackQuery, Chat, Message, User

from handlers.callbacks import CountryCb, MenuCb
from handlers.filters import CallbackPrefixes, FromUsers, TypedText, route_callbacks_by_prefix
from handlers.routers import build_routers


def _walk(router: Router) -> list[Router]:
    found = [router]
    for sub in router.sub_routers:
        found.extend(_walk(sub))
    return found


def test_no_handler_or_filter_runs_in_a_thread() -> None:
    sync = []
    for root in build_routers([1]):
        for router in _walk(root):
            for name, observer in router.observers.items():
                for handler in observer.handlers:
                    for item in [handler, *(handler.filters or [])]:
                        if not item.awaitable:
                            sync.append(f"{router.name}.{name}: {item.callback!r}")
    assert sync == []


def _message(text: str | None, user_id: int = 5) -> Message:
    return Message(
        message_id=1,
        date=0,
        chat=Chat(id=user_id, type="private"),
        from_user=User(id=user_id, is_bot=False, first_name="U"),
        text=text,
    )


def test_typed_text_is_text_and_not_a_command() -> None:
    check = TypedText()
    assert asyncio.run(check(_message("hello"))) is True
    assert asyncio.run(check(_message("/start"))) is False
    assert asyncio.run(check(_message(None))) is False


def test_from_users_reads_the_sender() -> None:
    admins = FromUsers([7])
    admin = User(id=7, is_bot=False, first_name="A")
    other = User(id=8, is_bot=False, first_name="B")
    query = CallbackQuery(id="1", from_user=other, chat_instance="c", data="x")
    assert asyncio.run(admins(query, event_from_user=admin)) is True
    assert asyncio.run(admins(query, event_from_user=other)) is False
    assert asyncio.run(admins(query)) is False


def _query(data: str | None) -> CallbackQuery:
    user = User(id=5, is_bot=False, first_name="U")
    return CallbackQuery(id="1", from_user=user, chat_instance="c", data=data)


def test_callback_prefixes_match_whole_prefixes_only() -> None:
    check = CallbackPrefixes([("r", ":"), ("m", ":"), ("x", ":")])
    assert asyncio.run(check(_query(CountryCb(sid=1, cc="US").pack()))) is False  # "c:..."
    assert asyncio.run(check(_query("r:1:US:smspalm"))) is True
    assert asyncio.run(check(_query("rl:5:show"))) is False  # "rl" is not "r"
    assert asyncio.run(check(_query("x"))) is True  # a factory with no fields packs as "x"
    assert asyncio.run(check(_query(None))) is False


def test_each_router_takes_the_prefixes_of_its_handlers() -> None:
    buy = Router(name="buy")
    flow = Router(name="flow")
    checked: list[str | None] = []

    async def spy(callback: CallbackQuery) -> bool:
        checked.append(callback.data)
        return True

    @flow.callback_query(spy, CountryCb.filter())
    async def country(callback: CallbackQuery) -> None: ...

    @buy.callback_query(MenuCb.filter(F.to == "buy"))
    async def menu(callback: CallbackQuery) -> None: ...

    buy.include_router(flow)
    fallback = Router(name="fallback")

    @fallback.callback_query()
    async def stale(callback: CallbackQuery) -> None: ...

    # Behaviour through aiogram's own propagation: the router filter decides who is reached.
    dispatcher = Dispatcher()
    dispatcher.include_routers(buy, fallback)
    for router in (buy, fallback):
        route_callbacks_by_prefix(router)
    reached: list[str] = []

    async def probe(update_type: str, data: str) -> None:
        query = _query(data)
        for router in (buy, fallback):
            result = await router.propagate_event(update_type, query)
            if result is not UNHANDLED:
                reached.append(router.name)
                return
        reached.append("nobody")

    asyncio.run(probe("callback_query", CountryCb(sid=1, cc="US").pack()))
    asyncio.run(probe("callback_query", MenuCb(to="buy").pack()))
    asyncio.run(probe("callback_query", "zz:1"))
    assert reached == ["buy", "buy", "fallback"]
    assert checked == [CountryCb(sid=1, cc="US").pack()]  # the others never reached `flow`


MENU_DESTINATIONS = ("balance", "buy", "help", "language", "main", "orders", "rent", "sms")


def _prefixes(router: Router) -> set[str]:
    """The `CallbackData` prefixes the router's callback handlers (and its sub-routers')
    filter by."""
    found = {
        f.callback.callback_data.__prefix__
        for r in _walk(router)
        for handler in r.callback_query.handlers
        for f in handler.filters or []
        if isinstance(f.callback, CallbackQueryFilter)
    }
    return found


@pytest.mark.parametrize(
    ("name", "position", "destination", "own"),
    [("buy-menus", 3, "buy", {"s", "c", "r", "q"}), ("orders-menus", 4, "orders", {"op", "o"})],
)
def test_the_buttons_tried_early_are_theirs_alone(
    name: str, position: int, destination: str, own: set[str]
) -> None:
    """The buttons of the buy flow and of My orders are tried right after the main menu's,
    before most routers; that changes what a tap does only if another router could take the
    same callback. Their prefixes are their own, and of the menu's destinations each takes
    its own only."""
    routers = build_routers([1])
    assert [r.name for r in routers[:5]] == [
        "errors",
        "referrals",
        "menu",
        "buy-menus",
        "orders-menus",
    ]
    early = routers[position]
    assert early.name == name
    mine = _prefixes(early)
    assert own <= mine
    for other in routers[:position] + routers[position + 1 :]:
        if other.name != "fallback":  # takes any callback, last
            assert _prefixes(other) & mine <= {MenuCb.__prefix__}, other.name
    menu_filters = [
        f.callback
        for handler in early.callback_query.handlers
        for f in handler.filters or []
        if isinstance(f.callback, CallbackQueryFilter) and f.callback.callback_data is MenuCb
    ]
    assert menu_filters
    for to in MENU_DESTINATIONS:
        query = _query(MenuCb(to=to).pack())
        taken = [bool(asyncio.run(check(query))) for check in menu_filters]
        assert all(taken) if to == destination else not any(taken), to
