"""The one HTTP layer every upstream client sends through.

A client builds a `Call` (what to send) and hands it, with the pure function that reads the
answer, to its `UpstreamHTTP`, which owns what every upstream has in common:

* the request budget: every attempt waits for its turn at the call's priority (no turn, e.g.
  the shared budget's Redis is down: the client's "unavailable" error, nothing was sent);
* what a network error proves. A connect error, a pool timeout, an unsupported scheme or a bad
  URL (`NOT_SENT`) means nothing left this machine: the client's "unavailable" error, even for
  a purchase. Any other network error means the request may have arrived: a money-moving call
  (`once(..., lost=...)`) raises its "outcome unknown" error, anything else "unavailable";
* the retry rules: reads (`read`) are retried after each of `retry_delays` while the error is
  transient (by default any "unavailable", RateLimited included); `once` never retries;
* redaction: the client's secrets (API keys, tokens) are replaced by `REDACTED` in every error
  it raises, and the httpx exception (whose request holds them) is never chained;
* `snippet` and `unexpected` for the bodies that end up in logs and error details;
* the metrics: every request is counted per upstream and HTTP status, with its latency (the
  budget's wait excluded), and 429s on their own (`shop.metrics.upstream_request`).

Answers are judged by the client's parser, `parse(body, http_status)`, body first: this layer
never decides what an HTTP status means.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from shop import metrics
from shop.providers.base import Priority, RateLimited, UpstreamUnavailable
from shop.providers.budget import Budget, BudgetUnavailable

log = logging.getLogger(__name__)

REDACTED = "***"

# Failures where the request cannot have reached the upstream.
NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.InvalidURL,
)

_T = TypeVar("_T")

ErrorFactory = Callable[[str], Exception]


def snippet(text: str, size: int = 160) -> str:
    """The start of a body on one line, for logs and error details."""
    return " ".join(text[:size].split())


def unexpected(
    upstream: str,
    body: str,
    http_status: int,
    unavailable: Callable[[str], UpstreamUnavailable] = UpstreamUnavailable,
    rate_limited: Callable[[str], UpstreamUnavailable] = RateLimited,
) -> UpstreamUnavailable:
    """The error for an answer we cannot read: `rate_limited` on HTTP 429, else
    `unavailable`."""
    error = rate_limited if http_status == 429 else unavailable
    return error(f"unexpected {upstream} answer (HTTP {http_status}): {snippet(body)!r}")


@dataclass(frozen=True)
class Call:
    """One request as a client builds it; `what` names it in logs and errors."""

    what: str
    method: str
    url: str
    params: Mapping[str, str] | None = None
    data: Mapping[str, str] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Reply:
    """An answer: its HTTP status and body, for the client's parser to judge."""

    status: int
    text: str


def is_unavailable(error: Exception, reply: Reply | None) -> bool:
    """The default retry rule: any "unavailable" (a network error, a 5xx, a 429, a body the
    parser could not read)."""
    return isinstance(error, UpstreamUnavailable)


class UpstreamHTTP:
    """The HTTP side of one upstream account: budget, retry rules, redaction.

    `unavailable` makes the client's "nothing happened, try later" error from a detail (for a
    request that did not leave, or a read that got no answer).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        name: str,
        *,
        budget: Budget | None = None,
        secrets: Iterable[str] = (),
        retry_delays: tuple[float, ...] = (0.5, 1.5),
        unavailable: ErrorFactory = UpstreamUnavailable,
        timeout: float | None = None,
    ) -> None:
        self._http = http
        self.name = name
        self.budget = budget
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        self.retry_delays = retry_delays
        self._unavailable = unavailable
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"UpstreamHTTP({self.name!r})"  # never a secret

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    async def send(
        self, call: Call, priority: Priority, lost: ErrorFactory | None = None
    ) -> Reply:
        """One request within the budget. A request that cannot have left raises
        `unavailable`; one that may have arrived and got no answer raises `lost` if given (a
        call that moves money), else `unavailable`."""
        label = f"{self.name} {call.what}"
        error: Exception
        if self.budget is not None:
            try:
                await self.budget.acquire(priority)
            except BudgetUnavailable as exc:
                raise self._unavailable(f"{label}: not sent, {exc}") from None
        extra: dict[str, Any] = {} if self._timeout is None else {"timeout": self._timeout}
        status: int | None = None  # for the metrics: None when no answer came
        started = time.perf_counter()
        try:
            response = await self._http.request(
                call.method,
                call.url,
                params=call.params,
                data=call.data,
                json=call.json,
                headers=call.headers,
                **extra,
            )
        except httpx.InvalidURL:
            error = self._unavailable(f"{label}: invalid base URL")
        except NOT_SENT as exc:
            error = self._unavailable(f"{label}: unreachable ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            make = lost or self._unavailable
            error = make(f"{label}: sent, no answer ({type(exc).__name__})")
        else:
            status = response.status_code
            return Reply(response.status_code, response.text)
        finally:
            metrics.upstream_request(self.name, status, time.perf_counter() - started)
        # Raised outside the `except`: the httpx error, whose request may hold a secret, is not
        # chained as context.
        raise error

    async def once(
        self,
        call: Call,
        parse: Callable[[str, int], _T],
        *,
        priority: Priority = Priority.PURCHASE,
        lost: ErrorFactory | None = None,
    ) -> _T:
        """Send once, never retried, and parse the answer (see `send` for `lost`)."""
        reply = await self.send(call, priority, lost)
        return self._parse(parse, reply)

    async def read(
        self,
        call: Call,
        parse: Callable[[str, int], _T],
        *,
        priority: Priority = Priority.INTERACTIVE,
        retries: int | None = None,
        retry_if: Callable[[Exception, Reply | None], bool] = is_unavailable,
    ) -> _T:
        """Send and parse; on an error for which `retry_if(error, reply)` holds (`reply` None:
        no answer), try again after each of `retry_delays` (at most `retries` times, default
        all of them), then raise the last error."""
        limit = len(self.retry_delays) if retries is None else min(retries, len(self.retry_delays))
        attempt = 0
        while True:
            reply: Reply | None = None
            try:
                reply = await self.send(call, priority)
                return self._parse(parse, reply)
            except Exception as exc:
                if attempt >= limit or not retry_if(exc, reply):
                    raise
                delay = self.retry_delays[attempt]
                attempt += 1
                what = f"{self.name} {call.what}"
                detail = self.redact(str(exc))
                log.info("%s failed (%s); retry %d in %.1fs", what, detail, attempt, delay)
            await asyncio.sleep(delay)

    def _parse(self, parse: Callable[[str, int], _T], reply: Reply) -> _T:
        try:
            return parse(reply.text, reply.status)
        except Exception as exc:
            if self._secrets:
                exc.args = tuple(
                    self.redact(arg) if isinstance(arg, str) else arg for arg in exc.args
                )
            raise
