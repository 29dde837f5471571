"""FakeSMSPalm in a process of its own, for bench.memory (so its memory is not the bot's).

Protocol over stdio, one JSON object per line: on start it prints ``{"base_url", "api_key"}``;
any line on stdin (or EOF) stops it, after it prints ``{"requests", "by_action",
"rejected_429"}``. It imports nothing from the bot, so a broken bot cannot hang it.

Run by bench.memory as ``python -m bench._fake_upstream --activations 10000``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from decimal import Decimal

from tests.fakes.smspalm import FIRST_ACTIVATION_ID, Activation, FakeSMSPalm, make_phone

US_ID = 187  # FakeSMSPalm's id for the United States


async def serve(activations: int) -> None:
    palm = FakeSMSPalm(rate_limit=None)
    await palm.start()
    now = time.monotonic()
    for number in range(FIRST_ACTIVATION_ID, FIRST_ACTIVATION_ID + activations):
        activation_id = str(number)
        palm.activations[activation_id] = Activation(
            id=activation_id,
            server="servertwo",
            service="wa",
            country_id=US_ID,
            phone=make_phone(US_ID, number),
            cost=Decimal("250.00"),
            ref=None,
            created_at=now,
        )
    print(json.dumps({"base_url": palm.base_url, "api_key": palm.api_key}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    stats = {
        "requests": len(palm.requests),
        "by_action": dict(Counter(r.action for r in palm.requests)),
        "rejected_429": palm.rejected_429,
    }
    print(json.dumps(stats), flush=True)
    await palm.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--activations", type=int, default=10_000)
    asyncio.run(serve(parser.parse_args().activations))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
