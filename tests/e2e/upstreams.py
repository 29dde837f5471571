"""Every number upstream beside the harness's SMSPalm, as one fixture's value: the fakes of
SMSPool, SpotSMS and PapSMS running on 127.0.0.1, and the settings that turn each on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from tests.fakes.papsms import FakePapSMS
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.smspool import FakeSMSPool
from tests.fakes.spotsms import FakeSpotSMS

OTHERS = ("smspool", "spotsms", "papsms")


@dataclass
class Upstreams:
    palm: FakeSMSPalm
    pool: FakeSMSPool
    spot: FakeSpotSMS
    pap: FakePapSMS

    def fake(self, provider: str) -> Any:
        """The fake behind a provider's settings name (`smspalm`, `smspool`, ...)."""
        return {"smspalm": self.palm, "smspool": self.pool, "spotsms": self.spot}.get(
            provider, self.pap
        )

    def keys(self, provider: str, rate_limit: int = 6000) -> dict[str, Any]:
        """The settings that turn on one of the other providers against its fake."""
        fake = self.fake(provider)
        return {
            f"{provider}_api_key": fake.api_key,
            f"{provider}_base_url": fake.base_url,
            f"{provider}_rate_limit": rate_limit,
        }


@asynccontextmanager
async def running_upstreams(
    palm: FakeSMSPalm,
    pool: FakeSMSPool | None = None,
    spot: FakeSpotSMS | None = None,
    pap: FakePapSMS | None = None,
) -> AsyncIterator[Upstreams]:
    """Start the other fakes (defaults: no rate limit on PapSMS) beside the harness's SMSPalm,
    and stop them afterwards."""
    pap = pap or FakePapSMS(rate_limit=None)
    made = Upstreams(palm, pool or FakeSMSPool(), spot or FakeSpotSMS(), pap)
    others = (made.pool, made.spot, made.pap)
    for fake in others:
        await fake.start()
    try:
        yield made
    finally:
        for fake in others:
            await fake.stop()
