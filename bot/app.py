"""The composition root: `build_app` builds every part (see `bot.factory`) and `App` starts
them, runs the bot (long polling, or webhook mode when `WEBHOOK_BASE_URL` is set), and closes
them in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from bot.config import Settings
from bot.factory.database import create_database, create_repositories
from bot.factory.http import create_http_client
from bot.factory.instances import join_registry
from bot.factory.providers import create_providers
from bot.factory.redis import budget_factory, create_redis
from bot.factory.scheduler import schedule_jobs
from bot.factory.services import Admin, create_services
from bot.factory.telegram import create_bot, create_dispatcher, set_commands
from bot.factory.web import (
    create_listener,
    create_telegram_webhook,
    require_dependencies,
    telegram_webhook_url,
)
from handlers.middlewares import InFlight
from handlers.notify import TelegramNotifier
from handlers.outcomes import UpdateOutcomes
from shop import metrics
from shop.jobs import OrderJobs, RentalPoller
from shop.money import Currency
from shop.providers.base import Route
from shop.providers.budget import Budget
from shop.services.broadcast import BroadcastService
from shop.services.catalog import CatalogService
from shop.services.crypto import CryptoTopups
from shop.services.instances import InstanceRegistry
from shop.services.orders import OrderService
from shop.services.rentals import RentalService
from shop.services.selfcheck import SelfCheckService
from shop.services.sms import SmsService
from shop.services.topups import TopupService
from shop.services.users import UserService
from shop.services.wallet import WalletService
from storage.db import Database
from web.health import Readiness
from web.server import WebServer
from web.telegram import TelegramWebhook

if TYPE_CHECKING:
    from redis.asyncio import Redis  # only with REDIS_URL: imported when configured

log = logging.getLogger(__name__)

SET_WEBHOOK_PAUSE_MAX = 30.0


class WebhookRefused(RuntimeError):
    """Telegram refused `setWebhook` (an http:// URL, a bad port, a bad token)."""


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
    rentals: RentalService | None = None  # SMSPool rentals, when SMSPool is configured
    rental_poller: RentalPoller | None = None
    web: WebServer | None = None  # the HTTP listener; None with HTTP_PORT=0
    readiness: Readiness = field(default_factory=Readiness)
    webhook: TelegramWebhook | None = None  # webhook mode
    redis: Redis | None = None  # the state shared with other instances (REDIS_URL)
    closed: bool = field(default=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    untrack: list[Callable[[], None]] = field(default_factory=list)  # metrics sources

    async def on_startup(self, bot: Bot) -> None:
        """Dispatcher startup: the scheduler must start inside the running loop."""
        self.jobs.start()
        if self.web is not None:
            await self.web.start()  # already listening when `run_*` started it
        await self.orders.recover()
        if self.sms is not None:
            await self.sms.recover()
        if self.rentals is not None:
            await self.rentals.recover(alone=len(await self.instances.live()) <= 1)
        if self.rental_poller is not None:
            self.rental_poller.start()
        await self.broadcasts.resume()
        schedule_jobs(self)
        await set_commands(
            self.bot,
            self.settings.admin_ids,
            sms_enabled=self.sms is not None,
            rentals_enabled=self.rentals is not None,
        )
        if self.webhook is None:
            self.readiness.serving = True  # long polling starts right after this

    async def daily_backup(self) -> None:
        """The scheduled backup: a copy in BACKUP_DIR, keeping the newest BACKUP_KEEP (SQLite;
        PostgreSQL is backed up with pg_dump by the operator)."""
        if self.admin.backups.available:
            await self.admin.backups.backup()

    async def resume_broadcasts(self) -> None:
        """Go on with a broadcast whose sender (another instance) died, if this one can take
        its lease."""
        await self.broadcasts.resume()

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
        self.readiness.serving = False
        self.jobs.shutdown()

    async def run(self, handle_signals: bool = True, polling_timeout: int = 30) -> None:
        """Serve until stopped: webhook mode when `WEBHOOK_BASE_URL` is set, else polling."""
        if self.webhook is not None:
            await self.run_webhook(handle_signals=handle_signals)
        else:
            await self.run_polling(handle_signals=handle_signals, polling_timeout=polling_timeout)

    async def stop(self) -> None:
        """Make `run` return (as SIGTERM does): polling stops, or the webhook stops serving."""
        if self.webhook is not None:
            self._stop.set()
            return
        with contextlib.suppress(RuntimeError):  # polling not started, or already stopped
            await self.dp.stop_polling()

    async def run_polling(self, handle_signals: bool = True, polling_timeout: int = 30) -> None:
        if self.web is not None:
            await self.web.start()  # /healthz answers while the start-up runs
        await self.bot.delete_webhook(drop_pending_updates=False)
        await self.dp.start_polling(
            self.bot,
            handle_signals=handle_signals,
            polling_timeout=polling_timeout,
            allowed_updates=self.dp.resolve_used_update_types(),
        )

    async def run_webhook(self, handle_signals: bool = True) -> None:
        """Webhook mode: listen, start up, `setWebhook`, then serve updates until stopped.

        Never `getUpdates`, never `drop_pending_updates` (pending updates are customers' clicks
        and payments). At the stop: new updates get 503 (Telegram delivers them again, to
        another instance or to this one after its restart), those in flight finish, then the
        listener closes. The webhook stays set, for the other instances and the next start."""
        assert self.web is not None and self.webhook is not None
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self._stop.set)
        workflow = {"dispatcher": self.dp, "bots": (self.bot,), **self.dp.workflow_data}
        try:
            await self.web.start()
            await self.dp.emit_startup(bot=self.bot, **workflow)
            try:
                if await self._set_webhook(self.webhook.secret):
                    self.readiness.serving = True
                    log.info("Serving Telegram updates at %s", telegram_webhook_url(self.settings))
                    await self._stop.wait()
            finally:
                self.readiness.serving = False
                await self.web.stop()
                await self.dp.emit_shutdown(bot=self.bot, **workflow)
        finally:
            for sig in signals:
                with contextlib.suppress(NotImplementedError):
                    loop.remove_signal_handler(sig)

    async def _set_webhook(self, secret: str) -> bool:
        """`setWebhook`, again after a flood wait, a network or a server error, until it
        works (True) or the app is stopped (False). A refusal (a bad URL, a bad token) ends
        the start with `WebhookRefused`."""
        url = telegram_webhook_url(self.settings)
        pause = 1.0
        while not self._stop.is_set():
            try:
                await self.bot.set_webhook(
                    url=url,
                    secret_token=secret,
                    allowed_updates=self.dp.resolve_used_update_types(),
                )
                return True
            except TelegramRetryAfter as exc:
                wait = float(exc.retry_after)
            except (TelegramNetworkError, TelegramServerError) as exc:
                wait, pause = pause, min(pause * 2, SET_WEBHOOK_PAUSE_MAX)
                log.warning("setWebhook failed (%s); trying again in %.0f s", exc.message, wait)
            except TelegramAPIError as exc:
                raise WebhookRefused(f"Telegram refused the webhook {url}: {exc.message}") from exc
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
        return False

    async def close(self, graceful: bool = True) -> None:
        """Release everything; gracefully, running handlers (a purchase) finish first.

        `graceful=False` cancels them instead, which is as close to a crash as a test gets.
        """
        if self.closed:
            return
        self.closed = True
        self.readiness.serving = False
        for untrack in self.untrack:
            untrack()
        await self.jobs.aclose()
        if self.rental_poller is not None:
            await self.rental_poller.aclose()
        if graceful:
            if self.web is not None:
                await self.web.stop()  # no new requests; webhook updates in flight finish
            await self.in_flight.drain(grace=self.settings.http_timeout_seconds + 5)
        else:
            await self.in_flight.cancel()
            if self.web is not None:
                await self.web.stop()
        await self.broadcasts.close(graceful=graceful)  # before the bot session and database
        if graceful:
            await self._release_leases()  # nothing of this instance's runs any more
        await self.catalog.close()
        for budget in self.budgets:
            budget.close()
        await self.http.aclose()
        await self.bot.session.close()
        await _leave(self.instances)
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.close()

    async def _release_leases(self) -> None:
        """A graceful stop hands this instance's orders and jobs to the others at once (a
        crash leaves them to run out)."""
        try:
            await self.jobs.release_leases()
        except Exception:
            log.exception("Leases not released; they run out by themselves")


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
    repos = create_repositories(db, one_process=redis is None)
    http = create_http_client(settings)
    providers = create_providers(settings, http, budget_factory(settings, redis))
    bot = create_bot(settings)
    shop = create_services(settings, db, repos, providers, bot, instances.instance.id)
    readiness = Readiness()
    require_dependencies(readiness, db, redis)
    web = create_listener(
        settings, readiness, providers.routes, shop.orders, repos.routing, shop.sms, shop.crypto
    )
    dp, in_flight = create_dispatcher(settings, db, shop.handler_data(settings), redis)
    dp.update.outer_middleware(UpdateOutcomes())  # the metrics of every update
    webhook = create_telegram_webhook(settings, web, dp, bot, redis, readiness)
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
        rentals=shop.rentals,
        rental_poller=shop.rental_poller,
        web=web,
        readiness=readiness,
        webhook=webhook,
        redis=redis,
        untrack=[metrics.LIVE_ORDERS.track(shop.jobs.live_by_route)],
    )
    dp.startup.register(app.on_startup)
    dp.shutdown.register(app.on_shutdown)
    return app
