"""Which periodic job runs how often (the per-order polls and deadlines are `shop.jobs`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shop.jobs import SWEEP_SECONDS
from shop.services.admin import seconds_until_hour

if TYPE_CHECKING:
    from bot.app import App

PURGE_SECONDS = 600  # how often expired quotes and SMS drafts are deleted
STARS_REFUND_SECONDS = 300
SNAPSHOT_SECONDS = 3600


def schedule_jobs(app: App) -> None:
    """Register every periodic job on the running scheduler."""
    jobs, settings = app.jobs, app.settings
    if app.sms is not None:
        jobs.every("sms-sweeper", SWEEP_SECONDS, app.sms.sweep)
    jobs.every("sweeper", SWEEP_SECONDS, jobs.sweep)
    jobs.every("catalog", settings.catalog_refresh_seconds, app.catalog.refresh, first_in=0)
    jobs.every("stock-watches", settings.stock_check_seconds, app.check_watches)
    jobs.every("purge", PURGE_SECONDS, app.purge_expired)
    if app.crypto is not None:
        # first_in=0: invoices paid while the bot was down are credited at once.
        seconds = settings.cryptopay_poll_seconds
        jobs.every("cryptopay-poll", seconds, app.poll_crypto, first_in=0)
    jobs.every("stars-refunds", STARS_REFUND_SECONDS, app.topups.retry_charge_refunds, first_in=0)
    jobs.every("balance-snapshots", SNAPSHOT_SECONDS, app.admin.snapshot_balances, first_in=0)
    period = settings.self_check_seconds
    jobs.every("self-check", period, app.run_self_check, first_in=min(period, 60))
    first = seconds_until_hour(settings.backup_hour_utc)
    jobs.every("daily-backup", 86400, app.daily_backup, first_in=first)
