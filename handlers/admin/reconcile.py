"""Reconciliation: upstream spend against revenue (the panel section and /reconcile)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from handlers.admin import screens
from handlers.admin.args import split_args, usage_error, whole_number
from handlers.callbacks import AdminCb
from handlers.ui import answer, show
from shop.i18n import _
from shop.money import Currency
from shop.services.reconcile import ReconcileService

MAX_RECONCILE_DAYS = 366


async def _recon_text(reconciliation: ReconcileService, currency: Currency, days: int) -> str:
    return screens.reconciliation(
        await reconciliation.reconcile(days), days, currency, await reconciliation.rentals(days)
    )


def build_reconcile_router() -> Router:
    router = Router(name="admin-reconcile")

    @router.callback_query(AdminCb.filter(F.to == "recon"))
    async def recon_section(
        callback: CallbackQuery,
        callback_data: AdminCb,
        reconciliation: ReconcileService,
        currency: Currency,
    ) -> None:
        await answer(callback)
        days = min(max(callback_data.n, 1), MAX_RECONCILE_DAYS)
        text = await _recon_text(reconciliation, currency, days)
        await show(callback, text, screens.recon_keyboard(days))

    @router.message(Command("reconcile"))
    async def reconcile(
        message: Message,
        command: CommandObject,
        reconciliation: ReconcileService,
        currency: Currency,
    ) -> None:
        usage = _("/reconcile [days], e.g. /reconcile 30")
        (days_text,) = split_args(command, 0, 1, usage) or ["7"]
        days = whole_number(days_text, usage)
        if not 1 <= days <= MAX_RECONCILE_DAYS:
            raise usage_error(usage)
        await message.answer(await _recon_text(reconciliation, currency, days))

    return router
