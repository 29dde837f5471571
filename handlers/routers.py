"""Every feature's router, in the order the Dispatcher tries them."""

from __future__ import annotations

from collections.abc import Iterable

from aiogram import Router

from handlers.admin.router import build_admin_router
from handlers.buy.router import build_buy_menus_router, build_buy_router
from handlers.errors import build_errors_router
from handlers.filters import route_callbacks_by_prefix
from handlers.menu.router import build_fallback_router, build_menu_router
from handlers.orders.router import build_orders_menus_router, build_orders_router
from handlers.referrals.router import build_referral_router
from handlers.rentals.router import build_rentals_router
from handlers.sms.router import build_sms_router
from handlers.topup.router import build_payment_router, build_topup_router
from handlers.wallet.router import build_wallet_router


def build_routers(admin_ids: Iterable[int]) -> list[Router]:
    """Fresh routers (a router can be attached once, so each Dispatcher gets its own).

    Order matters where filters overlap: the referral deep link before /start, admins' commands
    and input before everyone's, Buy (and its free-text search) after the features whose
    forms take typed text, and the fallback last. A callback skips every router that has no
    handler for its `CallbackData` prefix (`route_callbacks_by_prefix`). The buttons of the
    buy flow and of My orders come right after the main menu's: most taps are theirs, no
    other router takes them (the prefixes are theirs alone, see tests/unit/test_filters.py),
    and each router a tap passes costs it time (the routers before them take no callback of
    theirs, so they pass at once; the main menu's own taps still come first)."""
    routers = [
        build_errors_router(),
        build_referral_router(),  # before the menu: links the inviter, then /start runs
        build_menu_router(),
        build_buy_menus_router(),
        build_orders_menus_router(),
        build_admin_router(admin_ids),  # admins only; anyone else falls through
        build_wallet_router(),
        build_topup_router(),
        build_payment_router(),
        build_orders_router(),
        build_rentals_router(),
        build_sms_router(),
        build_buy_router(),
        build_fallback_router(),
    ]
    for router in routers:
        route_callbacks_by_prefix(router)
    return routers
