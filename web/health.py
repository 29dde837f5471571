"""`/healthz`, `/readyz` and `/metrics` for the orchestrator and Prometheus.

`/healthz` answers 200 while the process serves HTTP at all (liveness). `/readyz` answers 200
only while this instance serves updates (start-up finished: in webhook mode, `setWebhook`
done; not yet shutting down) and every dependency answers (the database, Redis when
configured); otherwise 503 with one line per problem, naming the part, never its address.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)

CHECK_SECONDS = 2.0

Check = Callable[[], Awaitable[object]]


class Readiness:
    """Whether this instance serves updates, and the dependencies it cannot serve without."""

    def __init__(self) -> None:
        self.serving = False
        self._checks: dict[str, Check] = {}

    def require(self, name: str, check: Check) -> None:
        """`check()` must return within CHECK_SECONDS without raising for the instance to be
        ready (`name` is what /readyz says when it does not)."""
        self._checks[name] = check

    async def problems(self) -> list[str]:
        if not self.serving:
            return ["not serving updates"]
        found: list[str] = []
        for name, check in self._checks.items():
            try:
                async with asyncio.timeout(CHECK_SECONDS):
                    await check()
            except Exception as exc:
                log.warning("Readiness: %s does not answer (%s)", name, type(exc).__name__)
                found.append(f"{name} unreachable")
        return found


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def readyz_handler(readiness: Readiness) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def readyz(request: web.Request) -> web.Response:
        problems = await readiness.problems()
        if problems:
            return web.Response(status=503, text="\n".join(problems))
        return web.Response(text="ready")

    return readyz


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus text exposition of the process's registry."""
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
