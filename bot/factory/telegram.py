"""The Bot, the Dispatcher with its middlewares and routers, and the command menus."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from redis.asyncio import Redis

from bot.config import Settings
from bot.factory.redis import create_shared_fsm, create_throttle_store
from bot.factory.services import Services
from handlers.commands import (
    ADMIN_COMMANDS,
    BROADCAST_ADMIN_COMMANDS,
    RENTAL_COMMANDS,
    TOPUP_ADMIN_COMMANDS,
    USER_COMMANDS,
)
from handlers.guard import BanGuard
from handlers.middlewares import InFlight, UserMiddleware
from handlers.routers import build_routers
from handlers.throttling import build_throttle
from shop.i18n import DEFAULT_LOCALE, N_, i18n
from storage.db import Database
from storage.fsm import SQLiteStorage

log = logging.getLogger(__name__)


def json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_session(api_url: str) -> AiohttpSession:
    """aiogram's aiohttp session on `api_url`, reading and writing JSON with orjson (its
    documented `json_loads` / `json_dumps` arguments): every click costs an encoded keyboard
    and a decoded answer, and orjson does both several times faster than the standard
    library."""
    return AiohttpSession(
        api=TelegramAPIServer.from_base(api_url), json_loads=orjson.loads, json_dumps=json_dumps
    )


def create_bot(settings: Settings) -> Bot:
    return Bot(
        settings.token,
        session=create_session(settings.telegram_api_url),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def create_dispatcher(
    settings: Settings, db: Database, services: Services, redis: Redis | None = None
) -> tuple[Dispatcher, InFlight]:
    """The Dispatcher with every router, the services in its workflow data (handlers and
    filters take them by parameter name), and the middleware that tracks updates in flight.
    With Redis (`REDIS_URL`), FSM and throttle live there, shared by every instance."""
    storage, isolation = create_shared_fsm(settings) or (SQLiteStorage(db), None)
    dp = Dispatcher(storage=storage, events_isolation=isolation, **services)
    in_flight = InFlight()
    dp.update.outer_middleware(in_flight)
    users = services["users"]
    throttle = build_throttle(
        settings.throttle_per_second,
        settings.throttle_burst,
        settings.admin_ids,
        users,
        store=create_throttle_store(settings, redis),
    )
    sender = UserMiddleware(users)
    guard = BanGuard(settings.admin_ids, services["people"])
    for observer in (dp.message, dp.callback_query):
        observer.outer_middleware(throttle)  # first: a flood is dropped before the user lookup
        observer.outer_middleware(sender)
        observer.outer_middleware(guard)  # after the sender's record is loaded
    dp.include_routers(*build_routers(settings.admin_ids))
    return dp, in_flight


async def set_commands(
    bot: Bot, admin_ids: Iterable[int], sms_enabled: bool, rentals_enabled: bool = False
) -> None:
    """The command menus: one for everyone, a longer one for each admin."""
    user_commands = list(USER_COMMANDS)
    if rentals_enabled:
        at = next(i for i, c in enumerate(user_commands) if c.command == "orders") + 1
        user_commands[at:at] = RENTAL_COMMANDS
    if sms_enabled:
        user_commands.insert(2, BotCommand(command="sms", description=N_("Send an SMS")))
    await _set_commands(bot, user_commands, BotCommandScopeDefault())
    admin = user_commands + [
        BotCommand(command=name, description=str(text))
        for table in (ADMIN_COMMANDS, TOPUP_ADMIN_COMMANDS, BROADCAST_ADMIN_COMMANDS)
        for name, text in table.items()
    ]
    for admin_id in admin_ids:
        try:
            await _set_commands(bot, admin, BotCommandScopeChat(chat_id=admin_id))
        except TelegramAPIError as exc:
            log.warning("Admin commands for %s not set: %s", admin_id, exc.message)


async def _set_commands(
    bot: Bot, commands: list[BotCommand], scope: BotCommandScopeDefault | BotCommandScopeChat
) -> None:
    """One list per language: English for everyone, then each catalog's language."""
    for locale in i18n.available_locales:
        localized = [
            BotCommand(command=c.command, description=i18n.gettext(c.description, locale=locale))
            for c in commands
        ]
        language = None if locale == DEFAULT_LOCALE else locale
        await bot.set_my_commands(localized, scope=scope, language_code=language)
