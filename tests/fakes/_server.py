"""Scaffolding shared by the protocol fakes (SMSPalm, SMSPool, SpotSMS, PapSMS, SMSPM).

* :class:`FakeServer`: an aiohttp server on ``127.0.0.1`` with an OS-assigned port
  (``start``/``stop``, ``port``, ``base_url``, ``async with``), pending timers, an optional
  outbound client session, and requests in flight run in tasks shielded from client
  disconnects (``wait_idle``), with the ``delay_next``/``fail_next``/``garble_next`` queues
  applied to them (``garble_next``: the action takes effect, then the answer is replaced, as
  when a proxy or a crash swallows a real answer).
* :class:`SlidingWindow`: a per-key sliding-window rate limiter.
* :class:`Scripted`: per-key FIFO queues behind ``fail_next``/``delay_next``.
* :class:`Reply`, :func:`respond`, :func:`guess_content_type`, :func:`query_and_form`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import aiohttp
from aiohttp import web

HOST = "127.0.0.1"
TEXT_PLAIN = "text/plain"
TEXT_HTML = "text/html"
APPLICATION_JSON = "application/json"

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Reply:
    """An answer a fake is about to send (JSON unless told otherwise)."""

    body: str
    http_status: int = 200
    content_type: str = APPLICATION_JSON


class Recorded(Protocol):
    """What every fake's ``Request`` record offers (filled in once answered)."""

    http_status: int | None
    body: str | None


def guess_content_type(body: str) -> str:
    """Guess a content type for an injected body: HTML, JSON or plain text."""
    stripped = body.lstrip()
    if stripped.startswith("<"):
        return TEXT_HTML
    if stripped.startswith(("{", "[")):
        return APPLICATION_JSON
    return TEXT_PLAIN


async def query_and_form(request: web.Request) -> dict[str, str]:
    """Merge query-string and form parameters; the form wins, the last repeat wins."""
    params: dict[str, str] = dict(request.query.items())
    if request.method == "POST" and request.can_read_body:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def respond(record: Recorded, reply: Reply) -> web.Response:
    """Store the answer in the request record and turn it into an aiohttp response."""
    record.http_status = reply.http_status
    record.body = reply.body
    if ";" in reply.content_type:
        # Parameters (an odd `charset=...`) go out as they are, the body as UTF-8 bytes.
        headers = {"Content-Type": reply.content_type}
        return web.Response(body=reply.body.encode(), status=reply.http_status, headers=headers)
    return web.Response(text=reply.body, status=reply.http_status, content_type=reply.content_type)


class SlidingWindow:
    """Per-key sliding-window rate limiter; rejected calls do not enter the window."""

    def __init__(self) -> None:
        self._windows: dict[str, deque[float]] = {}

    def admit(self, key: str, limit: int | None, window_seconds: float) -> bool:
        """Whether one more call for ``key`` fits (``limit`` ``None`` admits everything)."""
        if limit is None:
            return True
        now = time.monotonic()
        window = self._windows.setdefault(key, deque())
        while window and now - window[0] >= window_seconds:
            window.popleft()
        if len(window) >= limit:
            return False
        window.append(now)
        return True


class Scripted(Generic[_T]):
    """Per-key FIFO queues of scripted entries (``fail_next`` answers, ``delay_next`` sleeps).

    ``normalise`` is applied to the key when entries are added. With ``by_prefix``, :meth:`pop`
    takes from the longest non-empty queue whose key is a prefix of the key asked for.
    """

    def __init__(
        self, normalise: Callable[[str], str] | None = None, by_prefix: bool = False
    ) -> None:
        self._normalise = normalise
        self._by_prefix = by_prefix
        self._queues: dict[str, deque[_T]] = {}

    def push(self, key: str, entry: _T, times: int = 1) -> None:
        if self._normalise is not None:
            key = self._normalise(key)
        self._queues.setdefault(key, deque()).extend([entry] * times)

    def pop(self, key: str) -> _T | None:
        if not self._by_prefix:
            queue = self._queues.get(key)
            return queue.popleft() if queue else None
        matching = [k for k, q in self._queues.items() if q and key.startswith(k)]
        if not matching:
            return None
        return self._queues[max(matching, key=len)].popleft()


class FakeServer:
    """Base of the protocol fakes: lifecycle, port, in-flight requests, scripted failures.

    Subclasses add their routes in :meth:`_add_routes`, may set ``_url_path`` (appended to
    ``base_url``) and list extra background tasks to cancel on stop in :meth:`_side_tasks`.
    """

    _url_path = ""

    def __init__(
        self, normalise: Callable[[str], str] | None = None, by_prefix: bool = False
    ) -> None:
        self._failures: Scripted[Any] = Scripted(normalise, by_prefix)
        self._garbles: Scripted[Any] = Scripted(normalise, by_prefix)
        self._delays: Scripted[float] = Scripted(normalise, by_prefix)
        self._timers: set[asyncio.TimerHandle] = set()
        self._inflight: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    def _add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _side_tasks(self) -> list[asyncio.Task[Any]]:
        """Background tasks besides requests in flight, cancelled by :meth:`stop`."""
        return []

    async def start(self) -> None:
        """Start serving on 127.0.0.1 with an OS-assigned port."""
        name = type(self).__name__
        if self._runner is not None:
            raise RuntimeError(f"{name} is already started")
        app = web.Application()
        self._add_routes(app)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=False, shutdown_timeout=1.0
        )
        await runner.setup()
        await web.TCPSite(runner, HOST, 0).start()
        self._runner = runner
        addresses = runner.addresses
        if not addresses:
            raise RuntimeError(f"{name} did not bind a socket")
        self._port = int(addresses[0][1])

    async def stop(self) -> None:
        """Stop serving; cancel pending timers, still-delayed requests and side tasks."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = [*self._inflight, *self._side_tasks()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (only after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` plus the fake's API path (only after :meth:`start`)."""
        return f"http://{HOST}:{self.port}{self._url_path}"

    async def wait_idle(self) -> None:
        """Wait until every request in flight (e.g. delayed ones) has been processed."""
        while self._inflight:
            await asyncio.wait(list(self._inflight))

    # ------------------------------------------------------------------ helpers

    def _call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` after ``delay`` seconds unless :meth:`stop` comes first."""

        def fire() -> None:
            self._timers.discard(timer)
            callback(*args)

        timer = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(timer)

    async def _scripted(self, key: str, proceed: Callable[[], _R]) -> _R:
        """Apply ``delay_next`` then ``fail_next`` for ``key``, else ``proceed()`` (its answer
        replaced by a ``garble_next`` entry if there is one).

        The delay entry is taken at once; the rest runs in a task shielded from client
        disconnects (so a delayed action still happens) and tracked by :meth:`wait_idle`.
        """
        delay = self._delays.pop(key)
        return await self._shielded(self._after(key, delay, proceed))

    async def _after(self, key: str, delay: float | None, proceed: Callable[[], _R]) -> _R:
        if delay:
            await asyncio.sleep(delay)
        injected = self._failures.pop(key)
        if injected is not None:
            return injected  # type: ignore[no-any-return]
        answer = proceed()
        garbled = self._garbles.pop(key)
        return answer if garbled is None else garbled  # type: ignore[no-any-return]

    async def _shielded(self, work: Coroutine[Any, Any, _R]) -> _R:
        task = asyncio.ensure_future(work)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return await asyncio.shield(task)
