"""Which periodic job runs how often (the per-order polls and deadlines are `shop.jobs`)."""

from __future__ import annotations

from typing import Protocol

from bot.config import Settings
from bot.factory.services import Admin
from shop.jobs import SWEEP_SECONDS, OrderJobs
from shop.services.backups import seconds_until_hour
from shop.services.catalog import CatalogService
from shop.services.crypto import CryptoTopups
from shop.services.instances import HEARTBEAT_SECONDS, InstanceRegistry
from shop.services.rentals import RentalService
from shop.services.sms import SmsService
from shop.services.topups import TopupService

PURGE_SECONDS = 600  # how often expired quotes and SMS drafts are deleted
STARS_REFUND_SECONDS = 300
SNAPSHOT_SECONDS = 3600


class Running(Protocol):
    """What the jobs run on: the app's parts and its job bodies (`bot.app.App`)."""

    settings: Settings
    jobs: OrderJobs
    catalog: CatalogService
    topups: TopupService
    admin: Admin
    sms: SmsService | None
    crypto: CryptoTopups | None
    instances: InstanceRegistry
    rentals: RentalService | None

    async def check_watches(self) -> None: ...
    async def purge_expired(self) -> None: ...
    async def poll_crypto(self) -> None: ...
    async def run_self_check(self) -> None: ...
    async def daily_backup(self) -> None: ...


def schedule_jobs(app: Running) -> None:
    """Register every periodic job on the running scheduler."""
    jobs, settings = app.jobs, app.settings
    jobs.every("instance-heartbeat", HEARTBEAT_SECONDS, app.instances.beat)
    if app.sms is not None:
        jobs.every("sms-sweeper", SWEEP_SECONDS, app.sms.sweep)
    jobs.every("sweeper", SWEEP_SECONDS, jobs.sweep)
    if app.rentals is not None:
        jobs.every("rental-sweeper", SWEEP_SECONDS, app.rentals.sweep)
    jobs.every("catalog", settings.catalog_refresh_seconds, app.catalog.refresh, first_in=0)
    jobs.every("stock-watches", settings.stock_check_seconds, app.check_watches)
    jobs.every("purge", PURGE_SECONDS, app.purge_expired)
    if app.crypto is not None:
        # first_in=0: invoices paid while the bot was down are credited at once.
        seconds = settings.cryptopay_poll_seconds
        jobs.every("cryptopay-poll", seconds, app.poll_crypto, first_in=0)
    jobs.every("stars-refunds", STARS_REFUND_SECONDS, app.topups.retry_charge_refunds, first_in=0)
    snapshots = app.admin.reconciliation.snapshot_balances
    jobs.every("balance-snapshots", SNAPSHOT_SECONDS, snapshots, first_in=0)
    period = settings.self_check_seconds
    jobs.every("self-check", period, app.run_self_check, first_in=min(period, 60))
    first = seconds_until_hour(settings.backup_hour_utc)
    jobs.every("daily-backup", 86400, app.daily_backup, first_in=first)
