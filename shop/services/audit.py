"""The audit log as the owner reads it, and entries for actions whose change happened elsewhere.

Services that change the database write their entry in the same transaction as the change
(`AuditRepository.write`); this service is for reading the log and for recording the rest.
"""

from __future__ import annotations

from shop.models import AuditEntry
from shop.ports import AuditCount, AuditRepository

PER_PAGE = 10


class AuditService:
    def __init__(self, audit: AuditRepository, counter: AuditCount) -> None:
        self._audit = audit
        self._counter = counter

    async def record(self, actor_id: int, action: str, target: object, detail: str = "") -> None:
        """Write an audit entry for an action whose change happened elsewhere."""
        await self._audit.record(actor_id, action, target, detail)

    async def recent(self, limit: int = 20, offset: int = 0) -> list[AuditEntry]:
        """The newest entries first."""
        return await self._audit.recent(limit, offset)

    async def page(self, page: int) -> tuple[list[AuditEntry], int, int]:
        """(entries, page, pages) of the audit log, newest first; `page` is clamped."""
        total = await self._counter.audit_count()
        pages = max(1, -(-total // PER_PAGE))
        page = min(max(page, 0), pages - 1)
        return await self.recent(PER_PAGE, page * PER_PAGE), page, pages
