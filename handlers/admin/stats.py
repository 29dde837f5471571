"""Figures: the Stats section of the panel, /stats and /providers (upstream balances)."""

from __future__ import annotations

from decimal import Decimal

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from handlers.admin import screens
from handlers.callbacks import AdminCb
from handlers.ui import answer, show
from shop.money import Currency
from shop.services.catalog import CatalogService
from shop.services.stats import StatsService


def _low_balance(stats: StatsService, currency: Currency) -> int:
    return currency.convert_up(stats.settings.low_balance_warning, Decimal(1))


async def _stats_text(stats: StatsService, catalog: CatalogService, currency: Currency) -> str:
    result = await stats.stats()
    titles = {key: route.title for key, route in catalog.route_infos.items()}
    return screens.stats(result, currency, titles, _low_balance(stats, currency))


def build_stats_router() -> Router:
    router = Router(name="admin-stats")

    @router.callback_query(AdminCb.filter(F.to == "stats"))
    async def stats_section(
        callback: CallbackQuery, stats: StatsService, catalog: CatalogService, currency: Currency
    ) -> None:
        await answer(callback)
        text = await _stats_text(stats, catalog, currency)
        await show(callback, text, screens.stats_keyboard())

    @router.message(Command("stats"))
    async def stats_command(
        message: Message, stats: StatsService, catalog: CatalogService, currency: Currency
    ) -> None:
        await message.answer(await _stats_text(stats, catalog, currency))

    @router.message(Command("providers"))
    async def providers(message: Message, stats: StatsService, currency: Currency) -> None:
        balances = await stats.balances()
        low = _low_balance(stats, currency)
        await message.answer(screens.providers(balances, currency, low))

    return router
