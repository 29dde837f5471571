"""The inbound HTTP listeners and their paths: SMSPM reports, PapSMS and Crypto Pay webhooks.

Each path carries a secret; when none is configured it is derived from the provider's key, so
it outlives restarts (callbacks for earlier work still use it).
"""

from __future__ import annotations

import hashlib

from pydantic import SecretStr

from bot.config import Settings
from shop.providers.base import Route
from shop.services.crypto import CryptoTopups
from shop.services.orders import OrderService
from shop.services.sms import SmsService
from storage.routing import RoutingRepo
from web.callbacks import cryptopay_webhook_handler, papsms_webhook_handler, sms_report_handler
from web.server import WebServer


def create_web_servers(
    settings: Settings,
    routes: dict[str, Route],
    orders: OrderService,
    routing: RoutingRepo,
    sms: SmsService | None,
    crypto: CryptoTopups | None,
) -> list[WebServer]:
    """One listener per port (SMSPM reports and PapSMS webhooks may share one), or none."""
    servers: dict[int, WebServer] = {}

    def server(host: str, port: int) -> WebServer:
        if port not in servers:
            servers[port] = WebServer(host, port)
        return servers[port]

    if sms is not None and settings.smspm_report_port is not None:
        web = server(settings.smspm_report_host, settings.smspm_report_port)
        handler = sms_report_handler(sms, smspm_report_secret(settings), web)
        web.add("POST", "/smspm/report/{secret}", handler)
        web.add("GET", "/smspm/report/{secret}", handler)
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
    if crypto is not None and settings.cryptopay_webhook_port is not None:
        secret = (
            settings.cryptopay_webhook_secret.get_secret_value()
            if settings.cryptopay_webhook_secret
            else _derived_secret("numbot-cryptopay-webhook", settings.cryptopay_token)
        )
        hook = server(settings.cryptopay_webhook_host, settings.cryptopay_webhook_port)
        hook.add(
            "POST", "/cryptopay/webhook/{secret}", cryptopay_webhook_handler(crypto, secret, hook)
        )
    return list(servers.values())


def smspm_report_url(settings: Settings) -> str | None:
    """Where SMSPM sends delivery reports, when the bot listens for them at a public URL."""
    if not settings.smspm_report_base_url or settings.smspm_report_port is None:
        return None
    return (
        settings.smspm_report_base_url.rstrip("/")
        + f"/smspm/report/{smspm_report_secret(settings)}"
    )


def smspm_report_secret(settings: Settings) -> str:
    if settings.smspm_report_secret:
        return settings.smspm_report_secret.get_secret_value()
    return _derived_secret("numbot-smspm-report", settings.smspm_token)


def _derived_secret(purpose: str, key: SecretStr | None) -> str:
    """A path secret that outlives restarts (callbacks for earlier work still use it)."""
    assert key is not None
    material = f"{purpose}:{key.get_secret_value()}".encode()
    return hashlib.sha256(material).hexdigest()[:32]
