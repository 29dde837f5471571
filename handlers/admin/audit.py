"""The audit log of admin actions: the panel section and /audit [page]."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from handlers.admin import screens
from handlers.admin.args import split_args, whole_number
from handlers.callbacks import AdminCb
from handlers.ui import answer, show
from shop.i18n import _
from shop.services.audit import AuditService


async def _audit_text(audit: AuditService, page: int) -> tuple[str, int, int]:
    entries, page, pages = await audit.page(page)
    return screens.audit(entries, page, pages), page, pages


def build_audit_router() -> Router:
    router = Router(name="admin-audit")

    @router.callback_query(AdminCb.filter(F.to == "audit"))
    async def audit_section(
        callback: CallbackQuery, callback_data: AdminCb, audit: AuditService
    ) -> None:
        await answer(callback)
        text, page, pages = await _audit_text(audit, callback_data.n)
        await show(callback, text, screens.audit_keyboard(page, pages))

    @router.message(Command("audit"))
    async def audit_command(message: Message, command: CommandObject, audit: AuditService) -> None:
        usage = _("/audit [page]")
        (page_text,) = split_args(command, 0, 1, usage) or ["1"]
        page = whole_number(page_text, usage)
        text, page, pages = await _audit_text(audit, max(page, 1) - 1)
        await message.answer(text, reply_markup=screens.audit_keyboard(page, pages))

    return router
