"""The one aiohttp listener of the bot (`HTTP_HOST`:`HTTP_PORT`): every inbound path (upstream
callbacks, the Telegram webhook, health and metrics) is a route on it. Callback work that runs
after answering is spawned here and awaited at stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import web
from aiohttp.http import HttpProcessingError

log = logging.getLogger(__name__)

# Telegram updates can be tens of kilobytes (a long message quoting another); every path
# checks its secret before it reads a body, so a stranger cannot make us read one.
MAX_BODY = 1024 * 1024


class ListenerError(RuntimeError):
    """The listener could not bind its address (in use, not ours): a configuration problem."""


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
    def __init__(self, host: str, port: int, shutdown_timeout: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.shutdown_timeout = shutdown_timeout
        self.app = web.Application(client_max_size=MAX_BODY)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def started(self) -> bool:
        return self._runner is not None

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
        """Listen (once; a second call does nothing). Port 0 takes one the OS picks; `port`
        then tells which."""
        if self._runner is not None:
            return
        runner = web.AppRunner(
            self.app,
            access_log=None,
            logger=_QuietBadRequests(logging.getLogger("aiohttp.server"), {}),
            shutdown_timeout=self.shutdown_timeout,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ListenerError(
                f"The HTTP listener cannot listen on {self.host}:{self.port} ({exc.strerror}): "
                "set HTTP_HOST/HTTP_PORT to a free address"
            ) from exc
        self._runner = runner
        addresses = runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        log.info("HTTP listener on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop accepting connections, let the requests in flight finish (up to
        `shutdown_timeout`, then they are cancelled), close; then await the spawned work."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)
