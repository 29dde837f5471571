"""Steps that several end-to-end tests share."""

from __future__ import annotations

from tests.fakes.telegram import FakeUser, Message


async def start(user: FakeUser, timeout: float = 10.0) -> Message:  # noqa: ASYNC109
    await user.send("/start")
    return await user.wait_for("👋 Hi", timeout=timeout)


async def buy_to_confirm(
    user: FakeUser,
    service: str = "WhatsApp",
    country: str = "United States",
    route: str = "SMSPalm Server 2",
    timeout: float = 10.0,  # noqa: ASYNC109 - each screen's wait
) -> Message:
    """Main menu -> Buy -> service -> country -> route: returns the confirm screen."""
    menu = await start(user, timeout)
    await user.click(menu, "Buy a number")
    services = await user.wait_for("Choose a service", timeout)
    await user.click(services, service)
    countries = await user.wait_for("Choose a country", timeout)
    await user.click(countries, country)
    routes = await user.wait_for("Choose a route", timeout)
    await user.click(routes, route)
    return await user.wait_for("Confirm your purchase", timeout)


async def buy(
    user: FakeUser,
    service: str = "WhatsApp",
    country: str = "United States",
    route: str = "SMSPalm Server 2",
) -> Message:
    """Buy through the menus and return the order card."""
    confirm = await buy_to_confirm(user, service, country, route)
    await user.click(confirm, "Pay")
    return await user.wait_for("Waiting for the SMS")
