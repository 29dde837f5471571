"""A made-up provider for trying the whole flow with nothing but a bot token (SANDBOX=1).

Stateless on purpose: the activation id carries its purchase time, so a restart changes nothing.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from decimal import Decimal

from shop.providers.base import (
    Activation,
    ActivationStatus,
    CountryRef,
    NoActivation,
    Priority,
    StatusKind,
    UpstreamCountry,
    UpstreamOffer,
    UpstreamService,
)

_SERVICES = [("wa", "WhatsApp"), ("tg", "Telegram"), ("go", "Google"), ("ig", "Instagram")]
_COUNTRIES = [("US", "United States"), ("GB", "United Kingdom"), ("DE", "Germany")]
_DIAL = {"US": "1555", "GB": "44700", "DE": "4915"}


class SandboxRoute:
    """Sells fake numbers priced in the shop currency; a code arrives `code_after` s later."""

    key = "sandbox"
    title = "🧪 Sandbox"
    account = "sandbox"
    rate = Decimal(1)
    can_request_another = True
    can_finish = True
    is_sandbox = True

    def __init__(self, currency: str, code_after: float = 5.0) -> None:
        self.currency = currency
        self.code_after = code_after

    async def balance(self) -> Decimal:
        return Decimal("1000")

    async def services(self) -> list[UpstreamService]:
        return [UpstreamService(code, name) for code, name in _SERVICES]

    async def countries(self) -> list[UpstreamCountry]:
        return [UpstreamCountry(iso, name) for iso, name in _COUNTRIES]

    async def offers(self, service_code: str, priority: Priority) -> list[UpstreamOffer]:
        return [UpstreamOffer(iso, Decimal("0.10"), 99) for iso, _ in _COUNTRIES]

    async def price(self, service_code: str, country: CountryRef) -> UpstreamOffer | None:
        return UpstreamOffer(country.upstream_id, Decimal("0.10"), 99)

    async def buy(
        self, service_code: str, country: CountryRef, ref: str, max_cost: Decimal | None = None
    ) -> Activation:
        stamp = int(time.time() * 1000)
        activation_id = f"sbx{stamp}{secrets.randbelow(1000):03d}"
        digits = f"{secrets.randbelow(10**6):06d}"
        return Activation(activation_id, _DIAL.get(country.upstream_id, "999") + digits)

    async def status(self, activation_id: str) -> ActivationStatus:
        if not activation_id.startswith("sbx") or not activation_id[3:].isdigit():
            raise NoActivation()
        bought_at = int(activation_id[3:-3]) / 1000
        if time.time() - bought_at < self.code_after:
            return ActivationStatus(StatusKind.WAITING)
        code = str(int(hashlib.sha256(activation_id.encode()).hexdigest(), 16) % 900000 + 100000)
        return ActivationStatus(
            StatusKind.CODE, code=code, text=f"Your verification code is {code} (sandbox)"
        )

    async def cancel(self, activation_id: str) -> None:
        return None

    async def request_another(self, activation_id: str) -> None:
        return None

    async def finish(self, activation_id: str) -> None:
        return None

    async def close(self) -> None:
        return None
