"""Backups of the database: a consistent copy in BACKUP_DIR, the newest BACKUP_KEEP kept."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shop.ports import AuditRepository, BackupRepository, ShopSettings

log = logging.getLogger(__name__)

BACKUP_GLOB = "numbot-*.db"


def seconds_until_hour(hour: int, now: datetime | None = None) -> float:
    """Seconds from `now` to the next `hour`:00 UTC (a full day when it is that moment)."""
    now = now or datetime.now(UTC)
    target = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if target <= now:
        target += timedelta(days=1)
    return (target - now).total_seconds()


class BackupService:
    def __init__(
        self, repo: BackupRepository, audit: AuditRepository, settings: ShopSettings
    ) -> None:
        self._repo = repo
        self._audit = audit
        self.settings = settings

    @property
    def available(self) -> bool:
        """The bot backs the database up itself (SQLite). On PostgreSQL the operator does,
        with pg_dump: /backup says so and the daily job does nothing."""
        return self._repo.can_back_up

    async def backup(self, actor_id: int | None = None) -> Path:
        """A consistent copy of the database in BACKUP_DIR (timestamped); keeps the newest
        BACKUP_KEEP copies. An admin's backup is written to the audit log."""
        directory = self.settings.backup_dir
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / datetime.now(UTC).strftime("numbot-%Y%m%d-%H%M%S-%f.db")
        partial = path.with_suffix(".part")
        await self._repo.backup(partial)
        partial.replace(path)
        self._rotate(directory)
        log.info("Database backed up to %s", path)
        if actor_id is not None:
            await self._audit.record(actor_id, "backup", path.name, str(path.stat().st_size))
        return path

    def backups(self) -> list[Path]:
        """The kept backups, oldest first."""
        directory = self.settings.backup_dir
        return sorted(directory.glob(BACKUP_GLOB)) if directory.is_dir() else []

    def _rotate(self, directory: Path) -> None:
        """Delete all but the newest BACKUP_KEEP backups (names sort by time)."""
        files = sorted(directory.glob(BACKUP_GLOB))
        for old in files[: max(0, len(files) - self.settings.backup_keep)]:
            old.unlink(missing_ok=True)
