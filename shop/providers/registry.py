"""Which routes this shop sells: every provider whose key is set (and the sandbox if asked)."""

from __future__ import annotations

import httpx

from bot.config import Settings
from shop.providers.base import Route
from shop.providers.budget import RequestBudget
from shop.providers.papsms import PapSMSClient, PapSMSRoute
from shop.providers.sandbox import SandboxRoute
from shop.providers.smspalm import SMSPalmClient, SMSPalmRoute
from shop.providers.smspool import SMSPoolClient, SMSPoolRoute
from shop.providers.spotsms import SpotSMSClient, SpotSMSRoute


def build_routes(
    settings: Settings, http: httpx.AsyncClient
) -> tuple[dict[str, Route], list[RequestBudget], dict[str, float]]:
    """Routes by key, the request budgets to close at shutdown, and per-route poll intervals."""
    routes: dict[str, Route] = {}
    budgets: list[RequestBudget] = []
    intervals: dict[str, float] = {}

    def budget(per_minute: int) -> RequestBudget:
        made = RequestBudget(per_minute)
        budgets.append(made)
        return made

    if settings.smspalm_api_key is not None and settings.smspalm_rate is not None:
        palm = SMSPalmClient(
            http,
            settings.smspalm_base_url,
            settings.smspalm_api_key.get_secret_value(),
            budget(settings.smspalm_rate_limit),
        )
        for server in settings.smspalm_servers:
            route = SMSPalmRoute(palm, server, settings.smspalm_rate)
            routes[route.key] = route
    if settings.smspool_api_key is not None:
        pool = SMSPoolClient(
            http,
            settings.smspool_base_url,
            api_key=settings.smspool_api_key.get_secret_value(),
            budget=budget(settings.smspool_rate_limit),
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
            budget=budget(settings.spotsms_rate_limit),
        )
        routes["spotsms"] = SpotSMSRoute(spot, settings.spotsms_rate)
    if settings.papsms_api_key is not None:
        pap = PapSMSClient(
            http,
            settings.papsms_base_url,
            api_key=settings.papsms_api_key.get_secret_value(),
            budget=budget(settings.papsms_rate_limit),
        )
        routes["papsms"] = PapSMSRoute(pap, settings.papsms_rate)
        if settings.papsms_webhook_port is not None:
            intervals["papsms"] = settings.papsms_poll_seconds  # the webhook is the fast path
    if settings.sandbox:
        routes["sandbox"] = SandboxRoute(settings.currency)
    return routes, budgets, intervals
