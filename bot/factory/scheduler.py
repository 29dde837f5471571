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
BROADCAST_RESUME_SECONDS = 15  # how soon a broadcast whose sender died goes on elsewhere


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
    async def resume_broadcasts(self) -> None: ...


def schedule_jobs(app: Running) -> None:
    """Register every periodic job on the running scheduler.

    Per instance: the heartbeat and the order (and SMS send) leases, which keep this
    instance's own queues. Every other job is done once for the whole shop: a singleton, run
    by whichever instance holds its lease (`OrderJobs.every(..., singleton=True)`)."""
    jobs, settings = app.jobs, app.settings
    jobs.every("instance-heartbeat", HEARTBEAT_SECONDS, app.instances.beat)
    renew = settings.order_lease_seconds / 3
    jobs.every("order-leases", renew, jobs.keep_leases)
    # Between renewals, at least once per poll interval: a dead instance's orders are polled
    # again within one lease plus one poll interval of its last renewal.
    claims = min(renew, settings.poll_interval_seconds)
    if claims < renew:
        jobs.every("order-claims", claims, jobs.claim_free)
    if app.sms is not None:
        jobs.every("sms-leases", renew, app.sms.keep_leases)
        jobs.every("sms-sweeper", SWEEP_SECONDS, app.sms.sweep, singleton=True)
    jobs.every("sweeper", SWEEP_SECONDS, jobs.sweep, singleton=True)
    if app.rentals is not None:
        jobs.every("rental-sweeper", SWEEP_SECONDS, app.rentals.sweep, singleton=True)
    catalog_every = settings.catalog_refresh_seconds
    jobs.every("catalog", catalog_every, app.catalog.refresh, first_in=0, singleton=True)
    jobs.every("stock-watches", settings.stock_check_seconds, app.check_watches, singleton=True)
    jobs.every("purge", PURGE_SECONDS, app.purge_expired, singleton=True)
    if app.crypto is not None:
        # first_in=0: invoices paid while the bot was down are credited at once.
        seconds = settings.cryptopay_poll_seconds
        jobs.every("cryptopay-poll", seconds, app.poll_crypto, first_in=0, singleton=True)
    refunds = app.topups.retry_charge_refunds
    jobs.every("stars-refunds", STARS_REFUND_SECONDS, refunds, first_in=0, singleton=True)
    snapshots = app.admin.reconciliation.snapshot_balances
    jobs.every("balance-snapshots", SNAPSHOT_SECONDS, snapshots, first_in=0, singleton=True)
    period = settings.self_check_seconds
    first = min(period, 60)
    jobs.every("self-check", period, app.run_self_check, first_in=first, singleton=True)
    backup_at = seconds_until_hour(settings.backup_hour_utc)
    jobs.every("daily-backup", 86400, app.daily_backup, first_in=backup_at, singleton=True)
    jobs.every("broadcasts", BROADCAST_RESUME_SECONDS, app.resume_broadcasts)
