"""Telegram handlers: one router per feature, built by functions so tests can build many."""

from __future__ import annotations

from collections.abc import Iterable

from aiogram import Router

from bot.services.users import UserService
from handlers.admin import build_admin_router
from handlers.buy import build_buy_router
from handlers.common import UserMiddleware, build_errors_router
from handlers.orders import build_orders_router
from handlers.sms import build_sms_router
from handlers.start import build_fallback_router, build_start_router
from handlers.wallet import build_wallet_router


def build_router(users: UserService, admin_ids: Iterable[int]) -> Router:
    """The whole bot's routing tree; the fallback router goes last."""
    root = Router(name="root")
    middleware = UserMiddleware(users)
    root.message.outer_middleware(middleware)
    root.callback_query.outer_middleware(middleware)
    root.include_routers(
        build_errors_router(),
        build_start_router(),
        build_admin_router(admin_ids),
        build_wallet_router(),
        build_orders_router(),
        build_sms_router(),
        build_buy_router(),
        build_fallback_router(),
    )
    return root
