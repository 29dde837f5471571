"""Backups: the panel section with "Back up now", and /backup (a copy sent as a document)."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, FSInputFile, Message

from handlers.admin import screens
from handlers.admin.args import actor
from handlers.callbacks import AdminCb
from handlers.ui import answer, show
from shop.i18n import _
from shop.services.backups import BackupService

MAX_DOCUMENT_BYTES = 50 * 1024 * 1024  # what a bot may upload


def _backups_text(backups: BackupService) -> str:
    if not backups.available:
        return screens.backups_by_operator()
    settings = backups.settings
    return screens.backups(
        backups.backups(), settings.backup_hour_utc, settings.backup_keep, settings.backup_dir
    )


async def _send_backup(bot: Bot, chat_id: int, backups: BackupService, actor_id: int) -> None:
    if not backups.available:
        await bot.send_message(chat_id, screens.backups_by_operator())
        return
    path = await backups.backup(actor_id)
    if path.stat().st_size > MAX_DOCUMENT_BYTES:
        await bot.send_message(chat_id, screens.backup_too_large(path))
        return
    await bot.send_document(
        chat_id, FSInputFile(path, filename=path.name), caption=screens.backup_caption(path)
    )


def build_backups_router() -> Router:
    router = Router(name="admin-backups")

    @router.callback_query(AdminCb.filter(F.to == "backup"))
    async def backup_section(callback: CallbackQuery, backups: BackupService) -> None:
        await answer(callback)
        keyboard = screens.backup_keyboard() if backups.available else screens.back_keyboard()
        await show(callback, _backups_text(backups), keyboard)

    @router.callback_query(AdminCb.filter(F.to == "dobackup"))
    async def back_up_now(callback: CallbackQuery, backups: BackupService, bot: Bot) -> None:
        await answer(callback, _("Backing up…"))
        await _send_backup(bot, callback.from_user.id, backups, actor(callback))
        await show(callback, _backups_text(backups), screens.backup_keyboard())

    @router.message(Command("backup"))
    async def backup(message: Message, backups: BackupService, bot: Bot) -> None:
        await _send_backup(bot, message.chat.id, backups, actor(message))

    return router
