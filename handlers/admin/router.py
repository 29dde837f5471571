"""The owner's panel (/admin) and the admin commands, one router per area under one admin
router. Its filter lets only ADMIN_IDS in: anyone else's command falls through to "unknown
command" and a forged panel button to "no longer valid"."""

from __future__ import annotations

from collections.abc import Iterable

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from handlers.admin import screens
from handlers.admin.audit import build_audit_router
from handlers.admin.backups import build_backups_router
from handlers.admin.orders import build_orders_router
from handlers.admin.payments import build_payments_router
from handlers.admin.people import build_people_router
from handlers.admin.pricing import build_pricing_router
from handlers.admin.reconcile import build_reconcile_router
from handlers.admin.stats import build_stats_router
from handlers.broadcast.router import build_broadcast_router
from handlers.callbacks import AdminCb
from handlers.filters import FromUsers
from handlers.ui import answer, show


def build_admin_router(admin_ids: Iterable[int]) -> Router:
    admins = FromUsers(admin_ids)
    router = Router(name="admin")
    router.message.filter(admins)
    router.callback_query.filter(admins)
    router.include_routers(
        build_stats_router(),
        build_people_router(),
        build_orders_router(),
        build_pricing_router(),
        build_reconcile_router(),
        build_backups_router(),
        build_audit_router(),
        build_payments_router(),
        build_broadcast_router(),
        _build_panel_router(),  # last: it takes the panel buttons no area took
    )
    return router


def _build_panel_router() -> Router:
    router = Router(name="admin-panel")

    @router.message(Command("admin"))
    async def panel(message: Message) -> None:
        await message.answer(screens.home(), reply_markup=screens.home_keyboard())

    @router.callback_query(AdminCb.filter(F.to == "broadcast"))
    async def broadcast_section(callback: CallbackQuery) -> None:
        await answer(callback)
        await show(callback, screens.broadcast_help(), screens.back_keyboard())

    @router.callback_query(AdminCb.filter())
    async def home(callback: CallbackQuery) -> None:
        """The panel's home: "Back", and any section this version does not have."""
        await answer(callback)
        await show(callback, screens.home(), screens.home_keyboard())

    return router
