"""Upstream requests in /metrics: counted per provider and HTTP status, with their latency,
and HTTP 429s on their own, as the providers' one HTTP layer sends them."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import BotHarness, free_port
from tests.e2e.test_webhook_mode import metric, scrape
from tests.fakes.smspalm import FakeSMSPalm


async def test_upstream_requests_latency_and_429s_per_provider(
    harness_factory: Callable[..., BotHarness], palm: FakeSMSPalm
) -> None:
    harness = harness_factory(http_port=free_port())
    app = await harness.start(refresh_catalog=False)
    before = await scrape(harness)
    await app.catalog.refresh()  # SMSPalm's catalog reads, answered 200
    palm.fail_next("getBalance", "Too Many Requests", http_status=429)
    route = next(iter(app.routes.values()))
    try:
        await route.balance()
    except Exception:
        pass  # the 429 (and whatever the retries met) is what is counted here
    after = await scrape(harness)

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("numbot_upstream_requests_total", provider="SMSPalm", status="200") >= 1
    assert grew("numbot_upstream_requests_total", provider="SMSPalm", status="429") == 1
    assert grew("numbot_upstream_429_total", provider="SMSPalm") == 1
    requests = sum(
        grew("numbot_upstream_requests_total", provider="SMSPalm", status=status)
        for status in ("200", "429", "error")
    )
    assert grew("numbot_upstream_request_seconds_count", provider="SMSPalm") == requests
