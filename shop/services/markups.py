"""The owner's pricing: markup rules, and the pricing figures as they apply now."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from shop.ports import AuditRepository, MarkupRulesRepository, ShopSettings
from shop.services.pricing import Pricing
from shop.services.topups import TopupService


@dataclass(frozen=True)
class PricingView:
    default_markup: Decimal
    rules: list[tuple[str, str, Decimal]]  # provider or "", service or "", percent
    topup_min: int  # minor units
    stars_rate: Decimal  # shop-currency major units per star


class MarkupService:
    def __init__(
        self,
        pricing: Pricing,
        rules: MarkupRulesRepository,
        audit: AuditRepository,
        topups: TopupService,
        settings: ShopSettings,
    ) -> None:
        self._pricing = pricing
        self._rules = rules
        self._audit = audit
        self._topups = topups
        self._settings = settings

    async def pricing_view(self) -> PricingView:
        """The markup rules, the minimum top-up and the Stars rate as they apply now (the
        top-up values from the top-up service, which keeps /setmintopup's and /setstarsrate's
        overrides)."""
        return PricingView(
            default_markup=self._settings.markup_percent,
            rules=await self._rules.markup_rules(),
            topup_min=(await self._topups.limits()).min,
            stars_rate=await self._topups.stars_rate(),
        )

    async def set_markup(
        self, actor_id: int, percent: Decimal, provider: str, service_id: int, service: str
    ) -> None:
        """Set the markup for a provider account and/or a service ("" and 0: every one)."""
        await self._pricing.set_markup(percent, provider, service_id)
        await self._audit.record(
            actor_id, "setmarkup", f"{provider or '*'}/{service or '*'}", f"{percent}%"
        )
