"""Telegram handlers: one router per feature, built by functions so tests can build many."""

from __future__ import annotations

from collections.abc import Iterable

from aiogram import Router

from handlers.admin import build_admin_router
from handlers.broadcast import build_broadcast_router
from handlers.buy import build_buy_router
from handlers.common import UserMiddleware, build_errors_router
from handlers.guard import BanGuard
from handlers.orders import build_orders_router
from handlers.sms import build_sms_router
from handlers.start import build_fallback_router, build_start_router
from handlers.throttling import ThrottleMiddleware, build_pause_router
from handlers.topup import build_referral_router, build_topup_admin_router, build_topup_router
from handlers.wallet import build_wallet_router
from shop.services.admin import AdminService
from shop.services.users import UserService


def install_routers(
    root: Router,
    users: UserService,
    admin_ids: Iterable[int],
    admin: AdminService,
    throttle: ThrottleMiddleware | None = None,
) -> None:
    """The whole bot's routing, installed on `root` (the Dispatcher, whose workflow data
    hands the services to handlers and filters by parameter name); the fallback router goes
    last."""
    if throttle is not None:  # first: a flood is dropped before the user lookup
        root.message.outer_middleware(throttle)
        root.callback_query.outer_middleware(throttle)
    middleware = UserMiddleware(users)
    root.message.outer_middleware(middleware)
    root.callback_query.outer_middleware(middleware)
    # after the user middleware: it reads the loaded user
    guard = BanGuard(admin_ids, admin)
    root.message.outer_middleware(guard)
    root.callback_query.outer_middleware(guard)
    root.include_routers(
        build_errors_router(),
        build_referral_router(),  # before start: links the inviter, then start runs
        build_start_router(),
        build_admin_router(admin_ids),
        build_broadcast_router(admin_ids),
        build_topup_admin_router(admin_ids),
        build_wallet_router(),
        build_topup_router(),
        build_orders_router(),
        build_sms_router(),
        # before buy: opening Buy while paused says until when
        build_pause_router(),
        build_buy_router(),
        build_fallback_router(),
    )
