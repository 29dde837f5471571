"""The one HTTP listener (`HTTP_HOST`:`HTTP_PORT`) and every path on it: `/healthz`, `/readyz`,
`/metrics`, the Telegram webhook (webhook mode), SMSPM reports, PapSMS and Crypto Pay webhooks.

Each receiver is switched on by its own setting: SMSPM reports by `PUBLIC_BASE_URL` (the URL
handed to SMSPM with each send), the PapSMS and Crypto Pay webhooks by `PAPSMS_WEBHOOK=1` and
`CRYPTOPAY_WEBHOOK=1` (the owner enters the URL in their dashboards). Each upstream path carries
a secret; when none is configured it is derived from the provider's key, so it outlives restarts
(callbacks for earlier work still use it). `HTTP_PORT=0` means no listener at all (polling mode
with no receiver only: the settings refuse anything else).
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiogram import Bot, Dispatcher
from pydantic import SecretStr

from bot.config import Settings
from shop.providers.base import Route
from shop.services.crypto import CryptoTopups
from shop.services.orders import OrderService
from shop.services.sms import SmsService
from storage.db import Database
from storage.routing import RoutingRepo
from web.callbacks import cryptopay_webhook_handler, papsms_webhook_handler, sms_report_handler
from web.health import Readiness, healthz, metrics, readyz_handler
from web.server import WebServer
from web.telegram import WEBHOOK_PATH, FailureWatch, TelegramWebhook
from web.updates import LocalUpdateClaims, RedisUpdateClaims, UpdateClaims


def create_listener(
    settings: Settings,
    readiness: Readiness,
    routes: dict[str, Route],
    orders: OrderService,
    routing: RoutingRepo,
    sms: SmsService | None,
    crypto: CryptoTopups | None,
) -> WebServer | None:
    """The listener with health, metrics and the upstream receivers switched on; None when
    `HTTP_PORT=0`."""
    if settings.http_port == 0:
        return None
    # As long as a running purchase may take: the updates in flight finish at shutdown.
    grace = settings.http_timeout_seconds + 5
    server = WebServer(settings.http_host, settings.http_port, shutdown_timeout=grace)
    server.add("GET", "/healthz", healthz)
    server.add("GET", "/readyz", readyz_handler(readiness))
    server.add("GET", "/metrics", metrics)
    if sms is not None and settings.public_base_url:
        handler = sms_report_handler(sms, smspm_report_secret(settings), server)
        server.add("POST", "/smspm/report/{secret}", handler)
        server.add("GET", "/smspm/report/{secret}", handler)
    if "papsms" in routes and settings.papsms_webhook:
        secret = (
            settings.papsms_webhook_secret.get_secret_value()
            if settings.papsms_webhook_secret
            else _derived_secret("numbot-papsms-webhook", settings.papsms_api_key)
        )
        server.add(
            "POST",
            "/papsms/webhook/{secret}",
            papsms_webhook_handler(orders, routing, secret, server),
        )
    if crypto is not None and settings.cryptopay_webhook:
        secret = (
            settings.cryptopay_webhook_secret.get_secret_value()
            if settings.cryptopay_webhook_secret
            else _derived_secret("numbot-cryptopay-webhook", settings.cryptopay_token)
        )
        handler = cryptopay_webhook_handler(crypto, secret, server)
        server.add("POST", "/cryptopay/webhook/{secret}", handler)
    return server


def require_dependencies(readiness: Readiness, db: Database, redis: Any | None) -> None:
    """What /readyz asks before it says ready: the database, and Redis when configured."""

    async def database() -> None:
        await db.fetchval("SELECT 1")

    readiness.require("database", database)
    if redis is not None:
        readiness.require("redis", redis.ping)


def create_telegram_webhook(
    settings: Settings,
    server: WebServer | None,
    dp: Dispatcher,
    bot: Bot,
    redis: Any | None,
    readiness: Readiness,
) -> TelegramWebhook | None:
    """In webhook mode (`WEBHOOK_BASE_URL`), the handler of `/telegram/webhook` on the listener,
    with update claims in Redis when configured (else in this process)."""
    if not settings.webhook_mode:
        return None
    assert server is not None and settings.webhook_secret is not None  # the settings say so
    claims: UpdateClaims = (
        RedisUpdateClaims(redis, settings.redis_prefix, bot.id)
        if redis is not None
        else LocalUpdateClaims()
    )
    secret = settings.webhook_secret.get_secret_value()
    webhook = TelegramWebhook(dp, bot, secret, claims, readiness)
    dp.update.outer_middleware(FailureWatch())  # tells the webhook which updates failed
    server.add("POST", WEBHOOK_PATH, webhook.handle)
    return webhook


def telegram_webhook_url(settings: Settings) -> str:
    assert settings.webhook_base_url is not None
    return settings.webhook_base_url + WEBHOOK_PATH


def smspm_report_url(settings: Settings) -> str | None:
    """Where SMSPM sends delivery reports: under `PUBLIC_BASE_URL`, when it is set."""
    if not settings.public_base_url:
        return None
    return settings.public_base_url + f"/smspm/report/{smspm_report_secret(settings)}"


def smspm_report_secret(settings: Settings) -> str:
    if settings.smspm_report_secret:
        return settings.smspm_report_secret.get_secret_value()
    return _derived_secret("numbot-smspm-report", settings.smspm_token)


def _derived_secret(purpose: str, key: SecretStr | None) -> str:
    """A path secret that outlives restarts (callbacks for earlier work still use it)."""
    assert key is not None
    material = f"{purpose}:{key.get_secret_value()}".encode()
    return hashlib.sha256(material).hexdigest()[:32]
