"""Issue 12, item 12: the key of a country pycountry does not know is collision-free (a slug of
its name plus a short hash of the whole name), and fits every callback that carries it; a
price of 0 is no offer."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx
import pytest

from handlers.callbacks import CountryCb, RouteCb, WatchCb
from shop.countries import resolve
from shop.providers.base import CountryRef, Priority, UpstreamOffer
from shop.providers.spotsms import SpotSMSClient, SpotSMSRoute
from tests.fakes.spotsms import FakeSpotSMS

# Each pair shares its first 16 slug characters (the old key).
NEIGHBOURS = [
    ("Netherlands Antilles", "Netherlands Antilles Curacao"),
    ("Zanzibar Islands North", "Zanzibar Islands South"),
    ("Transnistria Pridnestrovie East", "Transnistria Pridnestrovie West"),
]
LONGEST_ROUTE_KEY = "smspalm1"


@pytest.mark.parametrize(("first", "second"), NEIGHBOURS)
def test_names_sharing_a_prefix_get_different_keys(first: str, second: str) -> None:
    one, two = resolve(first), resolve(second)
    assert one.code.startswith("x-") and two.code.startswith("x-")
    assert one.code != two.code
    assert (one.name, two.name) == (first, second)


def test_the_key_is_stable_and_ignores_case_and_spacing() -> None:
    code = resolve("Netherlands Antilles").code
    assert resolve("  netherlands   ANTILLES ").code == code
    assert code.startswith("x-netherlands-anti-")
    assert re.fullmatch(r"x-[a-z0-9-]+", code)  # no callback separator, no spaces


def test_mapped_countries_keep_their_iso_code() -> None:
    assert resolve("United States").code == "US"
    assert resolve("USA").code == "US"
    assert resolve("Kosovo").code == "XK"


@pytest.mark.parametrize(
    "name",
    [
        "Netherlands Antilles Curacao",
        "The Very Long Name Of A Place Nobody Has Ever Mapped To ISO 3166, Really" * 3,
        "Ñandú-Land (Æther) / Ωmega",
        "???",
    ],
)
def test_every_country_callback_fits_in_64_bytes(name: str) -> None:
    code = resolve(name).code
    sid = 10**18  # far beyond any real service id
    for data in (
        CountryCb(sid=sid, cc=code),
        RouteCb(sid=sid, cc=code, rt=LONGEST_ROUTE_KEY),
        WatchCb(sid=sid, cc=code),
    ):
        packed = data.pack()
        assert len(packed.encode()) <= 64, packed
        assert type(data).unpack(packed) == data


# ---------------------------------------------------------------------------------- zero price


async def test_spotsms_zero_price_is_no_offer() -> None:
    async with FakeSpotSMS() as spot, httpx.AsyncClient() as http:
        spot.services[0]["price"] = "0.0000"  # WhatsApp, 0948
        spot.services[1]["price"] = "-1"  # Microsoft, 0003
        route = SpotSMSRoute(SpotSMSClient(http, spot.base_url, spot.api_key), Decimal(1))
        us = CountryRef("us", "US")
        assert await route.offers("0948", Priority.BACKGROUND) == []
        assert await route.price("0948", us) is None
        assert await route.offers("0003", Priority.BACKGROUND) == []
        assert await route.price("0003", us) is None
        telegram = await route.offers("0100", Priority.BACKGROUND)
        assert UpstreamOffer("tr", Decimal("0.1500"), 12) in telegram
