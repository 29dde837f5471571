"""Steps that several end-to-end tests share."""

from __future__ import annotations

from tests.fakes.telegram import FakeUser, Message


async def start(user: FakeUser) -> Message:
    await user.send("/start")
    return await user.wait_for("👋 Hi")


async def buy_to_confirm(
    user: FakeUser,
    service: str = "WhatsApp",
    country: str = "United States",
    route: str = "SMSPalm Server 2",
) -> Message:
    """Main menu -> Buy -> service -> country -> route: returns the confirm screen."""
    menu = await start(user)
    await user.click(menu, "Buy a number")
    services = await user.wait_for("Choose a service")
    await user.click(services, service)
    countries = await user.wait_for("Choose a country")
    await user.click(countries, country)
    routes = await user.wait_for("Choose a route")
    await user.click(routes, route)
    return await user.wait_for("Confirm your purchase")


async def buy(user: FakeUser, **choice: str) -> Message:
    """Buy through the menus and return the order card."""
    confirm = await buy_to_confirm(user, **choice)
    await user.click(confirm, "Pay")
    return await user.wait_for("Waiting for the SMS")
