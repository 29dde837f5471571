"""The aiohttp listener that upstream callbacks arrive on: one per port, work after answering."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import web
from aiohttp.http import HttpProcessingError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


class _QuietBadRequests(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, minus the traceback for a request aiohttp could not even parse
    (bytes outside ASCII in the request line, a broken header): aiohttp answers 400 itself, and
    a stranger should not fill the log with stacks that quote the request line (secret path
    and all). Crashes of our own handlers are still logged in full."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.info("Malformed request refused with HTTP %s", exc_info.code)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


class WebServer:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.app = web.Application(client_max_size=MAX_BODY)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run work after answering the caller; awaited at stop."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Callback work failed", exc_info=task.exception())

    def add(self, method: str, path: str, handler: Any) -> None:
        self.app.router.add_route(method, path, handler)

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            logger=_QuietBadRequests(logging.getLogger("aiohttp.server"), {}),
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("Callback endpoint listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
