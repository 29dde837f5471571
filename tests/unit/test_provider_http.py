"""The one HTTP layer under every upstream client: what a network error proves, retries,
redaction, the budget. Each client's money-moving call is driven through httpx.MockTransport:
an error before the request left (connect error, pool timeout, bad URL) is "unavailable", any
other network error is "outcome unknown", never retried, and no secret reaches the error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest

from shop.providers import cryptopay, papsms, smspalm, smspm, smspool, smspool_rentals, spotsms
from shop.providers.base import (
    CountryRef,
    ExtendOutcomeUnknown,
    Priority,
    PurchaseOutcomeUnknown,
    RateLimited,
    RefundOutcomeUnknown,
    UpstreamUnavailable,
)
from shop.providers.budget import RequestBudget
from shop.providers.http import Call, UpstreamHTTP, snippet, unexpected

SECRET = "very-secret-key-1234"
Handler = Callable[[httpx.Request], httpx.Response]


class CountingBudget(RequestBudget):
    def __init__(self) -> None:
        super().__init__(per_minute=100_000)
        self.acquired: list[int] = []

    async def acquire(self, priority: int) -> None:
        self.acquired.append(priority)


@dataclass(frozen=True)
class MoneyCall:
    """One client's call that moves money: how to make it, and what its errors are."""

    name: str
    run: Callable[[httpx.AsyncClient, CountingBudget], Awaitable[object]]
    unavailable: type[Exception]
    unknown: type[Exception]


US = CountryRef("187", "US")


async def _palm(http: httpx.AsyncClient, budget: CountingBudget) -> object:
    client = smspalm.SMSPalmClient(http, "http://palm.test/api", SECRET, budget, (0, 0))
    return await smspalm.SMSPalmRoute(client, smspalm.SERVER_TWO, Decimal(1)).buy("wa", US, "7")


def _pool(http: httpx.AsyncClient, budget: CountingBudget) -> smspool.SMSPoolClient:
    return smspool.SMSPoolClient(
        http, "http://pool.test", api_key=SECRET, budget=budget, retry_delays=(0, 0)
    )


async def _pool_buy(http: httpx.AsyncClient, budget: CountingBudget) -> object:
    return await _pool(http, budget).purchase("1", "1")


async def _rent(http: httpx.AsyncClient, budget: CountingBudget) -> object:
    return await smspool_rentals.SMSPoolRentals(_pool(http, budget)).purchase("0", 7)


async def _extend(http: httpx.AsyncClient, budget: CountingBudget) -> object:
    return await smspool_rentals.SMSPoolRentals(_pool(http, budget)).extend("ABC", 7)


async def _refund(http: httpx.AsyncClient, budget: CountingBudget) -> object:
    return await smspool_rentals.SMSPoolRentals(_pool(http, budget)).refund("ABC")


async def _spot(http: httpx.AsyncClient, budget: CountingBudget) -> object:
    client = spotsms.SpotSMSClient(http, "http://spot.test/api-data.php", SECRET, budget, (0, 0))
    return await client.get_number("0003", "us")


async def _pap(http: httpx.AsyncClient, budget: CountingBudget) -> object:
    client = papsms.PapSMSClient(
        http, "http://pap.test/api/v1", api_key=SECRET, budget=budget, backoff=(0, 0)
    )
    return await client.purchase("whatsapp", "us")


async def _sms(http: httpx.AsyncClient, budget: CountingBudget) -> object:
    client = smspm.SMSPMClient(http, "http://smspm.test", "hash-5678", SECRET, budget, (0,))
    return await client.send(["37256789045"], "hi", "Shop", None)


async def _invoice(http: httpx.AsyncClient, budget: CountingBudget) -> object:
    client = cryptopay.CryptoPayClient(http, SECRET, "http://pay.test", backoff=(0, 0))
    return await client.create_invoice(Decimal(1), fiat="USD")


MONEY_CALLS = [
    MoneyCall("smspalm", _palm, UpstreamUnavailable, PurchaseOutcomeUnknown),
    MoneyCall("smspool", _pool_buy, UpstreamUnavailable, PurchaseOutcomeUnknown),
    MoneyCall("rental", _rent, UpstreamUnavailable, PurchaseOutcomeUnknown),
    MoneyCall("extend", _extend, UpstreamUnavailable, ExtendOutcomeUnknown),
    MoneyCall("refund", _refund, UpstreamUnavailable, RefundOutcomeUnknown),
    MoneyCall("spotsms", _spot, UpstreamUnavailable, PurchaseOutcomeUnknown),
    MoneyCall("papsms", _pap, UpstreamUnavailable, PurchaseOutcomeUnknown),
    MoneyCall("smspm", _sms, smspm.SmsUnavailable, smspm.SmsOutcomeUnknown),
    MoneyCall("cryptopay", _invoice, cryptopay.CryptoPayUnavailable, cryptopay.CryptoPayTimeout),
]

NOT_SENT = [
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.InvalidURL,
]
LOST = [httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.RemoteProtocolError]


async def _fail_with(
    money: MoneyCall, exc: type[Exception]
) -> tuple[BaseException, list[httpx.Request], CountingBudget]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if exc is httpx.InvalidURL:
            raise httpx.InvalidURL(f"bad {request.url}")
        raise exc(f"failed {request.url}", request=request)  # type: ignore[call-arg]

    budget = CountingBudget()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(Exception) as info:
            await money.run(http, budget)
    return info.value, seen, budget


def _no_secret(error: BaseException) -> None:
    chain: BaseException | None = error
    while chain is not None:
        assert SECRET not in str(chain) and SECRET not in repr(chain.args)
        chain = chain.__cause__ or chain.__context__


@pytest.mark.parametrize("exc", NOT_SENT, ids=lambda e: e.__name__)
@pytest.mark.parametrize("money", MONEY_CALLS, ids=lambda m: m.name)
async def test_nothing_sent_is_unavailable(money: MoneyCall, exc: type[Exception]) -> None:
    error, seen, budget = await _fail_with(money, exc)
    assert isinstance(error, money.unavailable)
    assert not isinstance(error, money.unknown)
    assert len(seen) == 1  # never retried
    if money.name != "cryptopay":  # Crypto Pay has no request budget
        assert budget.acquired == [Priority.PURCHASE]
    _no_secret(error)


@pytest.mark.parametrize("exc", LOST, ids=lambda e: e.__name__)
@pytest.mark.parametrize("money", MONEY_CALLS, ids=lambda m: m.name)
async def test_sent_without_an_answer_is_outcome_unknown(
    money: MoneyCall, exc: type[Exception]
) -> None:
    error, seen, _ = await _fail_with(money, exc)
    assert isinstance(error, money.unknown)
    assert len(seen) == 1  # never retried
    _no_secret(error)


# ---------------------------------------------------------------------------------- the layer


def _layer(handler: Handler, budget: RequestBudget | None = None) -> UpstreamHTTP:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return UpstreamHTTP(http, "Test", budget=budget, secrets=[SECRET], retry_delays=(0, 0))


CALL = Call("thing", "GET", "http://up.test/", params={"key": SECRET})


def _echo(body: str, http_status: int) -> str:
    if http_status != 200:
        raise unexpected("Test", body, http_status)
    return body


async def test_reads_retry_within_the_budget_then_succeed() -> None:
    answers = iter([httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(200)])

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    budget = CountingBudget()
    layer = _layer(handler, budget)
    assert await layer.read(CALL, _echo, priority=Priority.POLL) == ""
    assert budget.acquired == [Priority.POLL] * 3


async def test_reads_give_up_after_the_delays_with_the_last_error() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(429, text=f"slow down {SECRET}")

    with pytest.raises(RateLimited) as info:
        await _layer(handler).read(CALL, _echo)
    assert len(calls) == 3
    _no_secret(info.value)
    with pytest.raises(RateLimited):
        await _layer(handler).read(CALL, _echo, retries=0)
    assert len(calls) == 4


async def test_a_read_is_retried_only_when_the_rule_says_so() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    with pytest.raises(UpstreamUnavailable):
        await _layer(handler).read(CALL, _echo, retry_if=lambda error, reply: reply is None)
    assert len(calls) == 1


async def test_errors_from_parsers_are_redacted() -> None:
    def parse(body: str, http_status: int) -> str:
        raise PurchaseOutcomeUnknown(f"echoed {body}")

    layer = _layer(lambda request: httpx.Response(200, text=f"key={SECRET}"))
    with pytest.raises(PurchaseOutcomeUnknown) as info:
        await layer.once(CALL, parse)
    assert str(info.value) == "echoed key=***"
    assert SECRET not in repr(layer)


def test_unexpected_and_snippet() -> None:
    assert type(unexpected("X", "<html>\n busy</html>", 429)) is RateLimited
    error = unexpected("X", "<html>\n down</html>", 502)
    assert type(error) is UpstreamUnavailable
    assert str(error) == "unexpected X answer (HTTP 502): '<html> down</html>'"
    assert snippet("a\n  b" + "c" * 500) == "a b" + "c" * 155
