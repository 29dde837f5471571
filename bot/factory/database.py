"""The database and the repositories on it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.config import Settings
from storage.admin import AdminRepo
from storage.audit import AuditRepo
from storage.broadcasts import BroadcastRepo
from storage.catalog import CatalogRepo
from storage.db import Database, safe_url
from storage.finding import FindingRepo
from storage.kv import KeyValueRepo
from storage.leases import JobLeaseRepo, LeaseRepo
from storage.migrate import open_database
from storage.orders import OrderRepo, QuoteRepo, UserOrderReads
from storage.promos import PromoRepo
from storage.rentals import RentalRepo
from storage.routing import RoutingRepo
from storage.selfcheck import SelfCheckRepo
from storage.sms import SmsRepo
from storage.topups import TopupRepo
from storage.users import LedgerRepo, UserRepo, UserRows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Repositories:
    """One of each repository (they hold nothing but the database)."""

    admin: AdminRepo
    audit: AuditRepo
    broadcasts: BroadcastRepo
    catalog: CatalogRepo
    job_leases: JobLeaseRepo
    finding: FindingRepo
    kv: KeyValueRepo
    leases: LeaseRepo
    ledger: LedgerRepo
    orders: OrderRepo
    promos: PromoRepo
    quotes: QuoteRepo
    rentals: RentalRepo
    routing: RoutingRepo
    self_check: SelfCheckRepo
    sms: SmsRepo
    topups: TopupRepo
    users: UserRepo


async def create_database(settings: Settings) -> Database:
    """The database (DATABASE_URL, else DATABASE_PATH), connected and migrated."""
    db = Database(settings.database, pool_size=settings.database_pool_size)
    log.info("Database: %s", safe_url(db.url))
    return await open_database(db)


def create_repositories(db: Database, one_process: bool = False) -> Repositories:
    """The repositories; `one_process` (no `REDIS_URL`: the registry refuses a second
    instance) lets the users repository keep the rows it read (`UserRows`), and the orders
    and routing repositories what they read of a user's orders (`UserOrderReads`)."""
    kept = UserOrderReads(db) if one_process else None
    return Repositories(
        admin=AdminRepo(db),
        audit=AuditRepo(db),
        broadcasts=BroadcastRepo(db),
        catalog=CatalogRepo(db),
        job_leases=JobLeaseRepo(db),
        finding=FindingRepo(db),
        kv=KeyValueRepo(db),
        leases=LeaseRepo(db),
        ledger=LedgerRepo(db),
        orders=OrderRepo(db, kept),
        promos=PromoRepo(),
        quotes=QuoteRepo(db),
        rentals=RentalRepo(db),
        routing=RoutingRepo(db, kept),
        self_check=SelfCheckRepo(db),
        sms=SmsRepo(db),
        topups=TopupRepo(db),
        users=UserRepo(db, UserRows(db) if one_process else None),
    )
