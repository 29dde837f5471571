"""Every service of the shop, wired to its repositories, providers and Telegram adapters."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import TypedDict

from aiogram import Bot

from bot.config import Settings
from bot.factory.database import Repositories
from bot.factory.providers import Providers
from bot.factory.web import smspm_report_url
from handlers.broadcast.sender import TelegramBroadcaster
from handlers.notify import TelegramNotifier
from handlers.topup.stars import TelegramStars
from shop.jobs import OrderJobs, RentalPoller, SmsJobs
from shop.money import Currency
from shop.services.audit import AuditService
from shop.services.backups import BackupService
from shop.services.broadcast import BroadcastService
from shop.services.catalog import CatalogService
from shop.services.crypto import CryptoTopups, supported_fiat
from shop.services.find import FindService
from shop.services.leases import Leases
from shop.services.markups import MarkupService
from shop.services.orders import OrderService, purchase_grace
from shop.services.people import PeopleService
from shop.services.pricing import Pricing
from shop.services.promos import PromoService
from shop.services.reconcile import ReconcileService
from shop.services.rentals import RentalService
from shop.services.selfcheck import SelfCheckService
from shop.services.sms import SmsService
from shop.services.stats import StatsService
from shop.services.topups import TopupService
from shop.services.users import UserService
from shop.services.wallet import WalletService
from storage.db import Database

log = logging.getLogger(__name__)


class Services(TypedDict):
    """What handlers receive by parameter name (`catalog: CatalogService`, ...)."""

    sms: SmsService | None
    sms_enabled: bool
    currency: Currency
    users: UserService
    wallet: WalletService
    catalog: CatalogService
    find: FindService
    orders: OrderService
    stats: StatsService
    people: PeopleService
    markups: MarkupService
    backups: BackupService
    reconciliation: ReconcileService
    audit: AuditService
    notifier: TelegramNotifier
    broadcasts: BroadcastService
    sandbox: bool
    crypto: CryptoTopups | None  # when CRYPTOPAY_TOKEN is set
    topups: TopupService
    promos: PromoService
    rentals: RentalService | None  # SMSPool rentals, when SMSPOOL_API_KEY is set


@dataclass(frozen=True)
class Admin:
    """The owner's services."""

    stats: StatsService
    people: PeopleService
    markups: MarkupService
    backups: BackupService
    reconciliation: ReconcileService
    audit: AuditService


@dataclass(frozen=True)
class Shop:
    """The services, and the parts of their wiring the app starts and stops."""

    currency: Currency
    jobs: OrderJobs
    notifier: TelegramNotifier
    users: UserService
    wallet: WalletService
    catalog: CatalogService
    orders: OrderService
    topups: TopupService
    promos: PromoService
    self_check: SelfCheckService
    broadcasts: BroadcastService
    admin: Admin
    sms: SmsService | None
    crypto: CryptoTopups | None
    find: FindService
    rentals: RentalService | None = None
    rental_poller: RentalPoller | None = None

    def handler_data(self, settings: Settings) -> Services:
        return Services(
            sms=self.sms,
            sms_enabled=self.sms is not None,
            currency=self.currency,
            users=self.users,
            wallet=self.wallet,
            catalog=self.catalog,
            find=self.find,
            orders=self.orders,
            stats=self.admin.stats,
            people=self.admin.people,
            markups=self.admin.markups,
            backups=self.admin.backups,
            reconciliation=self.admin.reconciliation,
            audit=self.admin.audit,
            notifier=self.notifier,
            broadcasts=self.broadcasts,
            sandbox=settings.sandbox,
            crypto=self.crypto,
            topups=self.topups,
            promos=self.promos,
            rentals=self.rentals,
        )


def create_services(
    settings: Settings,
    db: Database,
    repos: Repositories,
    providers: Providers,
    bot: Bot,
    instance_id: str,
) -> Shop:
    """Every service; `instance_id` (this process's registry id) owns its leases."""
    currency = Currency.of(settings.currency)
    pricing = Pricing(currency, settings.markup_percent, repos.routing)
    catalog = CatalogService(
        repos.catalog, providers.routes, pricing, settings.catalog_refresh_seconds, repos.routing
    )
    find = FindService(catalog, repos.finding)
    users = UserService(repos.users)
    wallet = WalletService(db, repos.users, repos.ledger, currency)
    notifier = TelegramNotifier(bot, users, currency, settings.admin_ids)
    leases = Leases(instance_id, settings.order_lease_seconds, repos.leases, repos.job_leases)
    jobs = OrderJobs(settings.poll_interval_seconds, providers.intervals, leases)
    orders = OrderService(
        db=db,
        quotes=repos.quotes,
        orders=repos.orders,
        ledger=repos.ledger,
        kv=repos.kv,
        catalog=catalog,
        pricing=pricing,
        notifier=notifier,
        jobs=jobs,
        order_timeout=settings.order_timeout_seconds,
        quote_ttl=settings.quote_ttl_seconds,
        cancel_limit=settings.cancel_limit,
        cancel_pause=settings.cancel_pause_seconds,
        purchase_grace=purchase_grace(settings.http_timeout_seconds),
        leases=leases,
    )
    jobs.bind(orders)
    topups = TopupService(
        db,
        repos.topups,
        repos.users,
        repos.ledger,
        repos.kv,
        repos.audit,
        currency,
        settings,
        notifier,
        TelegramStars(bot),
    )
    promos = PromoService(db, repos.promos, repos.ledger, repos.audit, currency)
    self_check = SelfCheckService(repos.ledger, repos.self_check, repos.kv, notifier, currency)
    broadcasts = BroadcastService(
        repos.broadcasts, TelegramBroadcaster(bot, users), settings.broadcast_rate, leases=leases
    )
    rentals, poller = _create_rentals(settings, db, repos, providers, currency, pricing, notifier)
    admin = _create_admin(
        settings, db, repos, providers, currency, pricing, orders, topups, self_check, rentals
    )
    sms = _create_sms(settings, db, repos, providers, currency, jobs, notifier, leases)
    crypto = _create_crypto(settings, repos, providers, topups, users, notifier, currency)
    return Shop(
        currency,
        jobs,
        notifier,
        users,
        wallet,
        catalog,
        orders,
        topups,
        promos,
        self_check,
        broadcasts,
        admin,
        sms,
        crypto,
        find,
        rentals,
        poller,
    )


def _create_rentals(
    settings: Settings,
    db: Database,
    repos: Repositories,
    providers: Providers,
    currency: Currency,
    pricing: Pricing,
    notifier: TelegramNotifier,
) -> tuple[RentalService | None, RentalPoller | None]:
    """SMSPool rentals and their poller, when SMSPool is configured."""
    if providers.rentals is None:
        return None, None
    rentals = RentalService(
        db=db,
        repo=repos.rentals,
        ledger=repos.ledger,
        kv=repos.kv,
        audit=repos.audit,
        client=providers.rentals,
        pricing=pricing,
        currency=currency,
        rate=settings.smspool_rate,
        notifier=notifier,
        poll_seconds=settings.rental_poll_seconds,
        purchase_grace=purchase_grace(settings.http_timeout_seconds),
        catalog=repos.catalog,
    )
    share = settings.smspool_rate_limit * settings.rental_budget_share
    return rentals, RentalPoller(rentals, share)


def _create_admin(
    settings: Settings,
    db: Database,
    repos: Repositories,
    providers: Providers,
    currency: Currency,
    pricing: Pricing,
    orders: OrderService,
    topups: TopupService,
    self_check: SelfCheckService,
    rentals: RentalService | None = None,
) -> Admin:
    """The owner's services: figures, users and bans, markups, backups, reconciliation,
    audit log."""
    sms = repos.sms if settings.smspm_enabled else None
    routes = providers.routes
    return Admin(
        stats=StatsService(
            repos.admin, repos.orders, routes, currency, settings, sms, self_check, rentals
        ),
        people=PeopleService(
            db,
            repos.users,
            repos.admin,
            repos.ledger,
            repos.orders,
            repos.audit,
            orders,
            currency,
            settings.admin_ids,
        ),
        markups=MarkupService(pricing, repos.admin, repos.audit, topups, settings),
        backups=BackupService(repos.admin, repos.audit, settings),
        reconciliation=ReconcileService(repos.admin, routes, rentals),
        audit=AuditService(repos.audit, repos.admin),
    )


def _create_sms(
    settings: Settings,
    db: Database,
    repos: Repositories,
    providers: Providers,
    currency: Currency,
    jobs: OrderJobs,
    notifier: TelegramNotifier,
    leases: Leases,
) -> SmsService | None:
    """Outbound SMS through SMSPM, offered when hash and token are set."""
    if providers.smspm is None:
        return None
    sms_jobs = SmsJobs(jobs, settings.smspm_poll_seconds)
    sms = SmsService(
        db=db,
        repo=repos.sms,
        ledger=repos.ledger,
        kv=repos.kv,
        client=providers.smspm,
        currency=currency,
        sender=settings.smspm_sender,
        default_price=currency.convert_up(settings.smspm_price_default, Decimal(1)),
        quote_ttl=settings.quote_ttl_seconds,
        deadline_seconds=settings.smspm_deadline_seconds,
        poll_seconds=settings.smspm_poll_seconds,
        report_url=smspm_report_url(settings),
        jobs=sms_jobs,
        notifier=notifier,
        leases=leases,
    )
    sms_jobs.bind(sms)
    return sms


def _create_crypto(
    settings: Settings,
    repos: Repositories,
    providers: Providers,
    topups: TopupService,
    users: UserService,
    notifier: TelegramNotifier,
    currency: Currency,
) -> CryptoTopups | None:
    """Crypto Pay top-ups, offered when CRYPTOPAY_TOKEN is set and the shop currency is one
    Crypto Pay prices invoices in (else off, with a log line: no made-up exchange rate)."""
    if providers.cryptopay is None:
        return None
    if not supported_fiat(currency.code):
        log.warning(
            "Crypto Pay cannot price invoices in %s (CURRENCY): crypto top-ups are off",
            currency.code,
        )
        return None
    return CryptoTopups(
        providers.cryptopay,
        topups,
        users,
        repos.ledger,
        notifier,
        currency,
        settings.cryptopay_assets,
        settings.invoice_ttl_seconds,
        topups.kv,
    )
