"""The upstream clients: which routes this shop sells (every provider whose key is set, and the
sandbox if asked), the SMSPM and Crypto Pay clients, and the request budgets to close."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx
from pydantic import SecretStr

from bot.config import Settings
from shop.providers.base import Route
from shop.providers.budget import Budget, RequestBudget
from shop.providers.cryptopay import CryptoPayClient
from shop.providers.papsms import PapSMSClient, PapSMSRoute
from shop.providers.sandbox import SandboxRoute
from shop.providers.smspalm import SMSPalmClient, SMSPalmRoute
from shop.providers.smspm import SMSPMClient
from shop.providers.smspool import SMSPoolClient, SMSPoolRoute
from shop.providers.smspool_rentals import SMSPoolRentals
from shop.providers.spotsms import SpotSMSClient, SpotSMSRoute


class BudgetFactory(Protocol):
    """Makes the request budget of one upstream account (named by its credentials)."""

    def __call__(self, upstream: str, per_minute: float, *credentials: str) -> Budget: ...


def local_budget(upstream: str, per_minute: float, *credentials: str) -> Budget:
    """One process: the budget's schedule in memory."""
    return RequestBudget(per_minute)


@dataclass(frozen=True)
class Providers:
    routes: dict[str, Route]
    budgets: list[Budget]  # closed at shutdown
    intervals: dict[str, float]  # per-route poll intervals where they differ
    smspm: SMSPMClient | None  # outbound SMS, when SMSPM's hash and token are set
    cryptopay: CryptoPayClient | None  # when CRYPTOPAY_TOKEN is set
    rentals: SMSPoolRentals | None = None  # SMSPool rentals, when SMSPOOL_API_KEY is set


def create_providers(
    settings: Settings, http: httpx.AsyncClient, make_budget: BudgetFactory = local_budget
) -> Providers:
    """`make_budget` makes each account's request budget (shared through Redis when several
    instances run: the documented limits are per key)."""
    routes, budgets, intervals = build_routes(settings, http, make_budget)
    smspm = create_smspm_client(settings, http, budgets, make_budget)
    pool = routes.get("smspool")
    # Rentals speak through the SMSPool route's client: one key, one request budget.
    rentals = SMSPoolRentals(pool.client) if isinstance(pool, SMSPoolRoute) else None
    return Providers(
        routes, budgets, intervals, smspm, create_cryptopay_client(settings, http), rentals
    )


def build_routes(
    settings: Settings, http: httpx.AsyncClient, make_budget: BudgetFactory = local_budget
) -> tuple[dict[str, Route], list[Budget], dict[str, float]]:
    """Routes by key, the request budgets to close at shutdown, and per-route poll intervals."""
    routes: dict[str, Route] = {}
    budgets: list[Budget] = []
    intervals: dict[str, float] = {}

    def budget(upstream: str, per_minute: int, key: SecretStr) -> Budget:
        made = make_budget(upstream, per_minute, key.get_secret_value())
        budgets.append(made)
        return made

    if settings.smspalm_api_key is not None and settings.smspalm_rate is not None:
        palm = SMSPalmClient(
            http,
            settings.smspalm_base_url,
            settings.smspalm_api_key.get_secret_value(),
            budget("smspalm", settings.smspalm_rate_limit, settings.smspalm_api_key),
        )
        for server in settings.smspalm_servers:
            route = SMSPalmRoute(palm, server, settings.smspalm_rate)
            routes[route.key] = route
    if settings.smspool_api_key is not None:
        pool = SMSPoolClient(
            http,
            settings.smspool_base_url,
            api_key=settings.smspool_api_key.get_secret_value(),
            budget=budget("smspool", settings.smspool_rate_limit, settings.smspool_api_key),
        )
        # One request/active per poll tick serves every live SMSPool order.
        routes["smspool"] = SMSPoolRoute(
            pool, settings.smspool_rate, snapshot_max_age=settings.poll_interval_seconds
        )
    if settings.spotsms_api_key is not None:
        spot = SpotSMSClient(
            http,
            settings.spotsms_base_url,
            api_key=settings.spotsms_api_key.get_secret_value(),
            budget=budget("spotsms", settings.spotsms_rate_limit, settings.spotsms_api_key),
        )
        routes["spotsms"] = SpotSMSRoute(spot, settings.spotsms_rate)
    if settings.papsms_api_key is not None:
        pap = PapSMSClient(
            http,
            settings.papsms_base_url,
            api_key=settings.papsms_api_key.get_secret_value(),
            budget=budget("papsms", settings.papsms_rate_limit, settings.papsms_api_key),
        )
        routes["papsms"] = PapSMSRoute(pap, settings.papsms_rate)
        if settings.papsms_webhook:
            intervals["papsms"] = settings.papsms_poll_seconds  # the webhook is the fast path
    if settings.sandbox:
        routes["sandbox"] = SandboxRoute(settings.currency)
    return routes, budgets, intervals


def create_smspm_client(
    settings: Settings,
    http: httpx.AsyncClient,
    budgets: list[Budget],
    make_budget: BudgetFactory = local_budget,
) -> SMSPMClient | None:
    if settings.smspm_hash is None or settings.smspm_token is None:
        return None
    hash_, token = settings.smspm_hash.get_secret_value(), settings.smspm_token.get_secret_value()
    budget = make_budget("smspm", settings.smspm_rate_limit, hash_, token)
    budgets.append(budget)
    return SMSPMClient(http, settings.smspm_base_url, hash_, token, budget)


def create_cryptopay_client(settings: Settings, http: httpx.AsyncClient) -> CryptoPayClient | None:
    if not settings.cryptopay_enabled or settings.cryptopay_token is None:
        return None
    return CryptoPayClient(
        http, settings.cryptopay_token.get_secret_value(), settings.cryptopay_base_url
    )
