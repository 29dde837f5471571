"""Which routes this shop sells: every provider whose key is set (and the sandbox if asked)."""

from __future__ import annotations

import httpx

from bot.config import Settings
from bot.providers.base import Route
from bot.providers.budget import RequestBudget
from bot.providers.sandbox import SandboxRoute
from bot.providers.smspalm import SMSPalmClient, SMSPalmRoute


def build_routes(
    settings: Settings, http: httpx.AsyncClient
) -> tuple[dict[str, Route], list[RequestBudget]]:
    routes: dict[str, Route] = {}
    budgets: list[RequestBudget] = []
    if settings.smspalm_api_key is not None and settings.smspalm_rate is not None:
        budget = RequestBudget(settings.smspalm_rate_limit)
        budgets.append(budget)
        client = SMSPalmClient(
            http, settings.smspalm_base_url, settings.smspalm_api_key.get_secret_value(), budget
        )
        for server in settings.smspalm_servers:
            route = SMSPalmRoute(client, server, settings.smspalm_rate)
            routes[route.key] = route
    if settings.sandbox:
        routes["sandbox"] = SandboxRoute(settings.currency)
    return routes, budgets
