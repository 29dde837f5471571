"""The composition root: `build_app` builds every part (see `bot.factory`) and `App` starts
them, runs the bot, and closes them in reverse order."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field

import httpx
from aiogram import Bot, Dispatcher
from redis.asyncio import Redis

from bot.config import Settings
from bot.factory.database import create_database, create_repositories
from bot.factory.http import create_http_client
from bot.factory.instances import join_registry
from bot.factory.providers import create_providers
from bot.factory.redis import budget_factory, create_redis
from bot.factory.scheduler import schedule_jobs
from bot.factory.services import Admin, create_services
from bot.factory.telegram import create_bot, create_dispatcher, set_commands
from bot.factory.web import create_web_servers
from handlers.middlewares import InFlight
from handlers.notify import TelegramNotifier
from shop.jobs import OrderJobs
from shop.money import Currency
from shop.providers.base import Route
from shop.providers.budget import Budget
from shop.services.broadcast import BroadcastService
from shop.services.catalog import CatalogService
from shop.services.crypto import CryptoTopups
from shop.services.instances import InstanceRegistry
from shop.services.orders import OrderService
from shop.services.selfcheck import SelfCheckService
from shop.services.sms import SmsService
from shop.services.topups import TopupService
from shop.services.users import UserService
from shop.services.wallet import WalletService
from storage.db import Database
from web.server import WebServer

log = logging.getLogger(__name__)


@dataclass
class App:
    settings: Settings
    db: Database
    http: httpx.AsyncClient
    bot: Bot
    dp: Dispatcher
    jobs: OrderJobs
    routes: dict[str, Route]
    budgets: list[Budget]
    catalog: CatalogService
    orders: OrderService
    wallet: WalletService
    users: UserService
    currency: Currency
    in_flight: InFlight
    notifier: TelegramNotifier
    topups: TopupService
    broadcasts: BroadcastService
    admin: Admin  # the owner's services
    self_check: SelfCheckService
    instances: InstanceRegistry  # this process's entry in the instance registry
    sms: SmsService | None = None
    crypto: CryptoTopups | None = None
    webs: list[WebServer] = field(default_factory=list)
    redis: Redis | None = None  # the state shared with other instances (REDIS_URL)
    closed: bool = field(default=False)

    async def on_startup(self, bot: Bot) -> None:
        """Dispatcher startup: the scheduler must start inside the running loop."""
        self.jobs.start()
        for web in self.webs:
            await web.start()
        await self.orders.recover()
        if self.sms is not None:
            await self.sms.recover()
        await self.broadcasts.resume()
        schedule_jobs(self)
        await set_commands(self.bot, self.settings.admin_ids, sms_enabled=self.sms is not None)

    async def daily_backup(self) -> None:
        """The scheduled backup: a copy in BACKUP_DIR, keeping the newest BACKUP_KEEP."""
        await self.admin.backups.backup()

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
        await _leave(self.instances)
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.close()


async def _leave(instances: InstanceRegistry) -> None:
    """Unregister, so a restart need not wait for the heartbeat's TTL (if this fails, the
    row goes stale by itself)."""
    try:
        await instances.leave()
    except Exception:
        log.exception("Instance %s could not unregister", instances.instance.id)


def settle_heap() -> None:
    """Move everything alive now (imports, the app itself) out of the garbage collector's
    sight, once, before serving. aiogram and pydantic leave some 200,000 long-lived
    objects, and each full collection walked them all: a pause of about 100 ms in the middle
    of someone's click, a few times a minute under load."""
    gc.collect()
    gc.freeze()


async def build_app(settings: Settings) -> App:
    """Build the whole bot from settings. Nothing happens at import time."""
    db = await create_database(settings)
    redis = create_redis(settings)
    try:
        instances = await join_registry(settings, db, redis)
    except BaseException:
        if redis is not None:
            await redis.aclose()
        await db.close()
        raise
    repos = create_repositories(db)
    http = create_http_client(settings)
    providers = create_providers(settings, http, budget_factory(settings, redis))
    bot = create_bot(settings)
    shop = create_services(settings, db, repos, providers, bot)
    webs = create_web_servers(
        settings, providers.routes, shop.orders, repos.routing, shop.sms, shop.crypto
    )
    dp, in_flight = create_dispatcher(settings, db, shop.handler_data(settings), redis)
    app = App(
        settings=settings,
        db=db,
        http=http,
        bot=bot,
        dp=dp,
        jobs=shop.jobs,
        routes=providers.routes,
        budgets=providers.budgets,
        catalog=shop.catalog,
        orders=shop.orders,
        wallet=shop.wallet,
        users=shop.users,
        currency=shop.currency,
        in_flight=in_flight,
        notifier=shop.notifier,
        topups=shop.topups,
        broadcasts=shop.broadcasts,
        admin=shop.admin,
        self_check=shop.self_check,
        instances=instances,
        sms=shop.sms,
        crypto=shop.crypto,
        webs=webs,
        redis=redis,
    )
    dp.startup.register(app.on_startup)
    dp.shutdown.register(app.on_shutdown)
    return app
