"""The composition root: builds everything in one place and closes it in reverse order."""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
from aiogram import Bot, Dispatcher, methods
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from pydantic import SecretStr

from bot.config import Settings
from bot.speedups import apply_speedups
from bot.telegram import LeanCodec, ReplaceText, make_session
from handlers import install_routers
from handlers.admin import ADMIN_COMMANDS
from handlers.broadcast import BROADCAST_ADMIN_COMMANDS, TelegramBroadcaster
from handlers.common import InFlight
from handlers.notify import TelegramNotifier
from handlers.throttling import build_throttle
from handlers.topup import TOPUP_ADMIN_COMMANDS, TelegramStars
from shop.i18n import DEFAULT_LOCALE, N_, i18n
from shop.jobs import SWEEP_SECONDS, OrderJobs, SmsJobs
from shop.money import Currency
from shop.providers.base import Route
from shop.providers.budget import RequestBudget
from shop.providers.cryptopay import CryptoPayClient
from shop.providers.registry import build_routes
from shop.providers.smspm import SMSPMClient
from shop.services.admin import AdminService, seconds_until_hour
from shop.services.broadcast import BroadcastService
from shop.services.catalog import CatalogService
from shop.services.crypto import CryptoTopups, supported_fiat
from shop.services.orders import OrderService, purchase_grace
from shop.services.pricing import Pricing
from shop.services.promos import PromoService
from shop.services.selfcheck import SelfCheckService
from shop.services.sms import SmsService
from shop.services.topups import TopupService
from shop.services.users import UserService
from shop.services.wallet import WalletService
from storage.audit import AuditRepo
from storage.broadcasts import BroadcastRepo
from storage.catalog import CatalogRepo
from storage.db import Database
from storage.fsm import NoIsolation, SQLiteStorage
from storage.kv import KeyValueRepo
from storage.orders import OrderRepo, QuoteRepo
from storage.promos import PromoRepo
from storage.routing import RoutingRepo
from storage.selfcheck import SelfCheckRepo
from storage.sms import SmsRepo
from storage.topups import TopupRepo
from storage.users import LedgerRepo, UserRepo
from web.callbacks import (
    cryptopay_webhook_handler,
    papsms_webhook_handler,
    sms_report_handler,
)
from web.server import WebServer

log = logging.getLogger(__name__)

PURGE_SECONDS = 600  # how often expired quotes and SMS drafts are deleted

# English descriptions, marked for extraction; `set_commands` sends one list per language.
USER_COMMANDS = [
    BotCommand(command="start", description=N_("Main menu")),
    BotCommand(command="buy", description=N_("Buy a number")),
    BotCommand(command="balance", description=N_("Your balance")),
    BotCommand(command="topup", description=N_("Top up your balance")),
    BotCommand(command="history", description=N_("Wallet history")),
    BotCommand(command="orders", description=N_("Your orders")),
    BotCommand(command="promo", description=N_("Redeem a promo code")),
    BotCommand(command="referrals", description=N_("Invite friends, earn a bonus")),
    BotCommand(command="language", description=N_("Language")),
    BotCommand(command="help", description=N_("How it works")),
]


@dataclass
class App:
    settings: Settings
    db: Database
    http: httpx.AsyncClient
    bot: Bot
    dp: Dispatcher
    jobs: OrderJobs
    routes: dict[str, Route]
    budgets: list[RequestBudget]
    catalog: CatalogService
    orders: OrderService
    wallet: WalletService
    users: UserService
    currency: Currency
    in_flight: InFlight
    notifier: TelegramNotifier
    topups: TopupService
    broadcasts: BroadcastService
    admin: AdminService
    self_check: SelfCheckService
    sms: SmsService | None = None
    crypto: CryptoTopups | None = None
    webs: list[WebServer] = field(default_factory=list)
    closed: bool = field(default=False)

    async def on_startup(self, bot: Bot) -> None:
        """Dispatcher startup: the scheduler must start inside the running loop."""
        self.jobs.start()
        for web in self.webs:
            await web.start()
        await self.orders.recover()
        if self.sms is not None:
            await self.sms.recover()
            self.jobs.every("sms-sweeper", SWEEP_SECONDS, self.sms.sweep)
        await self.broadcasts.resume()
        self.jobs.every("sweeper", SWEEP_SECONDS, self.jobs.sweep)
        self.jobs.every(
            "catalog", self.settings.catalog_refresh_seconds, self.catalog.refresh, first_in=0
        )
        self.jobs.every("stock-watches", self.settings.stock_check_seconds, self.check_watches)
        self.jobs.every("purge", PURGE_SECONDS, self.purge_expired)
        if self.crypto is not None:
            # first_in=0: invoices paid while the bot was down are credited at once.
            seconds = self.settings.cryptopay_poll_seconds
            self.jobs.every("cryptopay-poll", seconds, self.poll_crypto, first_in=0)
        self.jobs.every("stars-refunds", 300, self.topups.retry_charge_refunds, first_in=0)
        self.jobs.every("balance-snapshots", 3600, self.admin.snapshot_balances, first_in=0)
        period = self.settings.self_check_seconds
        self.jobs.every("self-check", period, self.run_self_check, first_in=min(period, 60))
        first = seconds_until_hour(self.settings.backup_hour_utc)
        self.jobs.every("daily-backup", 86400, self.daily_backup, first_in=first)
        await self.set_commands()

    async def daily_backup(self) -> None:
        """The scheduled backup: a copy in BACKUP_DIR, keeping the newest BACKUP_KEEP."""
        await self.admin.backup()

    async def purge_expired(self) -> None:
        """Delete quotes and SMS drafts whose price expired unused (what every tap stores)."""
        quotes = await self.orders.purge_quotes()
        drafts = await self.sms.purge_drafts() if self.sms is not None else 0
        if quotes or drafts:
            log.info("Purged %s expired quotes and %s expired SMS drafts", quotes, drafts)

    async def run_self_check(self) -> None:
        """Balances against the ledger, orders against their ledger rows; alerts on mismatch."""
        await self.self_check.run()

    async def check_watches(self) -> None:
        """Tell each user who asked, once, that their service and country are in stock."""
        for user_id, service, country in await self.catalog.check_watches():
            await self.notifier.in_stock(user_id, service, country)

    async def poll_crypto(self) -> None:
        """Credit paid and close expired Crypto Pay invoices (the webhook's fallback)."""
        if self.crypto is not None:
            await self.crypto.poll()

    async def on_shutdown(self) -> None:
        self.jobs.shutdown()

    async def set_commands(self) -> None:
        user_commands = list(USER_COMMANDS)
        if self.sms is not None:
            user_commands.insert(2, BotCommand(command="sms", description=N_("Send an SMS")))
        await self._set_commands(user_commands, BotCommandScopeDefault())
        admin = user_commands + [
            BotCommand(command=name, description=str(text))
            for table in (ADMIN_COMMANDS, TOPUP_ADMIN_COMMANDS, BROADCAST_ADMIN_COMMANDS)
            for name, text in table.items()
        ]
        for admin_id in self.settings.admin_ids:
            try:
                await self._set_commands(admin, BotCommandScopeChat(chat_id=admin_id))
            except TelegramAPIError as exc:
                log.warning("Admin commands for %s not set: %s", admin_id, exc.message)

    async def _set_commands(
        self, commands: list[BotCommand], scope: BotCommandScopeDefault | BotCommandScopeChat
    ) -> None:
        """One list per language: English for everyone, then each catalog's language."""
        for locale in i18n.available_locales:
            localized = [
                BotCommand(
                    command=c.command, description=i18n.gettext(c.description, locale=locale)
                )
                for c in commands
            ]
            language = None if locale == DEFAULT_LOCALE else locale
            await self.bot.set_my_commands(localized, scope=scope, language_code=language)

    async def run_polling(self, handle_signals: bool = True, polling_timeout: int = 30) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)
        await self.dp.start_polling(
            self.bot,
            handle_signals=handle_signals,
            polling_timeout=polling_timeout,
            allowed_updates=self.dp.resolve_used_update_types(),
        )

    async def close(self, graceful: bool = True) -> None:
        """Release everything; gracefully, running handlers (a purchase) finish first.

        `graceful=False` cancels them instead, which is as close to a crash as a test gets.
        """
        if self.closed:
            return
        self.closed = True
        await self.jobs.aclose()
        if graceful:
            await self.in_flight.drain(grace=self.settings.http_timeout_seconds + 5)
        else:
            await self.in_flight.cancel()
        await self.broadcasts.close(graceful=graceful)  # before the bot session and database
        for web in self.webs:
            await web.stop()
        await self.catalog.close()
        for budget in self.budgets:
            budget.close()
        await self.http.aclose()
        await self.bot.session.close()
        await self.db.close()


# The Bot API methods of a busy minute, whose answer models are built before serving.
BUSY_METHODS = (
    methods.GetUpdates,
    methods.SendMessage,
    methods.EditMessageText,
    methods.EditMessageReplyMarkup,
    methods.AnswerCallbackQuery,
    methods.SetMyCommands,
    methods.DeleteWebhook,
    methods.GetMe,
    methods.DeleteMessage,
    ReplaceText,
)


def settle_heap() -> None:
    """Move everything alive now (imports, the app itself) out of the garbage collector's
    sight, once, before serving. aiogram and pydantic leave some 200,000 long-lived
    objects, and each full collection walked them all: a pause of about 100 ms in the middle
    of someone's click, a few times a minute under load."""
    gc.collect()
    gc.freeze()


async def build_app(settings: Settings) -> App:
    """Build the whole bot from settings. Nothing happens at import time."""
    for method in BUSY_METHODS:
        LeanCodec.response_model(method.__returning__)
    apply_speedups()
    db = Database(settings.database_path)
    await db.connect()
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.http_timeout_seconds, connect=5.0),
        headers={"User-Agent": "numbot/0.1"},
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
    )
    routes, budgets, intervals = build_routes(settings, http)
    currency = Currency.of(settings.currency)
    routing = RoutingRepo(db)
    pricing = Pricing(currency, settings.markup_percent, routing)
    catalog = CatalogService(
        CatalogRepo(db), routes, pricing, settings.catalog_refresh_seconds, routing
    )
    users = UserService(UserRepo(db))
    ledger = LedgerRepo(db)
    wallet = WalletService(db, UserRepo(db), ledger, currency)

    bot = Bot(
        settings.token,
        session=make_session(settings.telegram_api_url),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
    notifier = TelegramNotifier(bot, users, catalog, currency, settings.admin_ids)
    jobs = OrderJobs(settings.poll_interval_seconds, intervals)
    orders = OrderService(
        db=db,
        quotes=QuoteRepo(db),
        orders=OrderRepo(db),
        ledger=ledger,
        kv=KeyValueRepo(db),
        catalog=catalog,
        pricing=pricing,
        notifier=notifier,
        jobs=jobs,
        order_timeout=settings.order_timeout_seconds,
        quote_ttl=settings.quote_ttl_seconds,
        cancel_limit=settings.cancel_limit,
        cancel_pause=settings.cancel_pause_seconds,
        purchase_grace=purchase_grace(settings.http_timeout_seconds),
    )
    notifier.order_codes = orders.codes
    topups = TopupService(
        db,
        TopupRepo(db),
        UserRepo(db),
        ledger,
        KeyValueRepo(db),
        AuditRepo(db),
        currency,
        settings,
        notifier,
        TelegramStars(bot),
    )
    promos = PromoService(db, PromoRepo(), ledger, AuditRepo(db), currency)
    jobs.bind(orders)
    self_check = SelfCheckService(ledger, SelfCheckRepo(db), KeyValueRepo(db), notifier, currency)
    broadcasts = BroadcastService(
        BroadcastRepo(db), TelegramBroadcaster(bot, users), settings.broadcast_rate
    )
    admin = AdminService(
        db,
        routes,
        currency,
        settings,
        orders=orders,
        pricing=pricing,
        sms=SmsRepo(db) if settings.smspm_enabled else None,
        topups=topups,
        self_check=self_check,
    )
    servers: dict[int, WebServer] = {}

    def server(host: str, port: int) -> WebServer:
        """One callback server per port: SMSPM reports and PapSMS webhooks may share one."""
        if port not in servers:
            servers[port] = WebServer(host, port)
        return servers[port]

    sms = _build_sms(settings, db, http, ledger, currency, jobs, notifier, budgets, server)
    if "papsms" in routes and settings.papsms_webhook_port is not None:
        secret = (
            settings.papsms_webhook_secret.get_secret_value()
            if settings.papsms_webhook_secret
            else _derived_secret("numbot-papsms-webhook", settings.papsms_api_key)
        )
        hook = server(settings.papsms_webhook_host, settings.papsms_webhook_port)
        hook.add(
            "POST",
            "/papsms/webhook/{secret}",
            papsms_webhook_handler(orders, routing, secret, hook),
        )
    crypto = _build_crypto(settings, http, topups, users, ledger, notifier, currency, server)

    dp = Dispatcher(storage=SQLiteStorage(db), events_isolation=NoIsolation())
    services = dict(
        sms=sms,
        sms_enabled=sms is not None,
        settings=settings,
        currency=currency,
        users=users,
        wallet=wallet,
        catalog=catalog,
        orders=orders,
        admin=admin,
        notifier=notifier,
        broadcasts=broadcasts,
        sandbox=settings.sandbox,
        crypto=crypto,  # CryptoTopups when CRYPTOPAY_TOKEN is set
        topups=topups,
        promos=promos,
    )
    in_flight = InFlight()
    dp.update.outer_middleware(in_flight)
    throttle = build_throttle(
        settings.throttle_per_second, settings.throttle_burst, settings.admin_ids, users
    )
    install_routers(dp, users, settings.admin_ids, services, throttle)
    app = App(
        settings,
        db,
        http,
        bot,
        dp,
        jobs,
        routes,
        budgets,
        catalog,
        orders,
        wallet,
        users,
        currency,
        in_flight,
        notifier,
        topups,
        broadcasts,
        admin,
        self_check,
        sms,
        crypto,
        list(servers.values()),
    )
    dp.startup.register(app.on_startup)
    dp.shutdown.register(app.on_shutdown)
    return app


def _build_sms(
    settings: Settings,
    db: Database,
    http: httpx.AsyncClient,
    ledger: LedgerRepo,
    currency: Currency,
    jobs: OrderJobs,
    notifier: TelegramNotifier,
    budgets: list[RequestBudget],
    server: Callable[[str, int], WebServer],
) -> SmsService | None:
    """Outbound SMS through SMSPM, offered when hash and token are set."""
    if settings.smspm_hash is None or settings.smspm_token is None:
        return None
    token = settings.smspm_token.get_secret_value()
    budget = RequestBudget(settings.smspm_rate_limit)
    budgets.append(budget)
    client = SMSPMClient(
        http, settings.smspm_base_url, settings.smspm_hash.get_secret_value(), token, budget
    )
    # The path secret must outlive restarts (reports for earlier sends use it): derive it.
    secret = (
        settings.smspm_report_secret.get_secret_value()
        if settings.smspm_report_secret
        else _derived_secret("numbot-smspm-report", settings.smspm_token)
    )
    path = f"/smspm/report/{secret}"
    report_url = (
        settings.smspm_report_base_url.rstrip("/") + path
        if settings.smspm_report_base_url and settings.smspm_report_port is not None
        else None
    )
    sms_jobs = SmsJobs(jobs, settings.smspm_poll_seconds)
    sms = SmsService(
        db=db,
        repo=SmsRepo(db),
        ledger=ledger,
        kv=KeyValueRepo(db),
        client=client,
        currency=currency,
        sender=settings.smspm_sender,
        default_price=currency.convert_up(settings.smspm_price_default, Decimal(1)),
        quote_ttl=settings.quote_ttl_seconds,
        deadline_seconds=settings.smspm_deadline_seconds,
        poll_seconds=settings.smspm_poll_seconds,
        report_url=report_url,
        jobs=sms_jobs,
        notifier=notifier,
    )
    sms_jobs.bind(sms)
    if settings.smspm_report_port is not None:
        web = server(settings.smspm_report_host, settings.smspm_report_port)
        handler = sms_report_handler(sms, secret, web)
        web.add("POST", "/smspm/report/{secret}", handler)
        web.add("GET", "/smspm/report/{secret}", handler)
    return sms


def _build_crypto(
    settings: Settings,
    http: httpx.AsyncClient,
    topups: TopupService,
    users: UserService,
    ledger: LedgerRepo,
    notifier: TelegramNotifier,
    currency: Currency,
    server: Callable[[str, int], WebServer],
) -> CryptoTopups | None:
    """Crypto Pay top-ups, offered when CRYPTOPAY_TOKEN is set and the shop currency is one
    Crypto Pay prices invoices in (else off, with a log line: no made-up exchange rate)."""
    if not settings.cryptopay_enabled or settings.cryptopay_token is None:
        return None
    if not supported_fiat(currency.code):
        log.warning(
            "Crypto Pay cannot price invoices in %s (CURRENCY): crypto top-ups are off",
            currency.code,
        )
        return None
    client = CryptoPayClient(
        http, settings.cryptopay_token.get_secret_value(), settings.cryptopay_base_url
    )
    crypto = CryptoTopups(
        client,
        topups,
        users,
        ledger,
        notifier,
        currency,
        settings.cryptopay_assets,
        settings.invoice_ttl_seconds,
        topups.kv,
    )
    if settings.cryptopay_webhook_port is not None:
        secret = (
            settings.cryptopay_webhook_secret.get_secret_value()
            if settings.cryptopay_webhook_secret
            else _derived_secret("numbot-cryptopay-webhook", settings.cryptopay_token)
        )
        hook = server(settings.cryptopay_webhook_host, settings.cryptopay_webhook_port)
        hook.add(
            "POST", "/cryptopay/webhook/{secret}", cryptopay_webhook_handler(crypto, secret, hook)
        )
    return crypto


def _derived_secret(purpose: str, key: SecretStr | None) -> str:
    """A path secret that outlives restarts (callbacks for earlier work still use it)."""
    assert key is not None
    material = f"{purpose}:{key.get_secret_value()}".encode()
    return hashlib.sha256(material).hexdigest()[:32]
