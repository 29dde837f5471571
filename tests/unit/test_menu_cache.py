"""CatalogService.menu: one build per key at a time, stale menus served while rebuilt."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from shop.services.catalog import CatalogService


def catalog(menu_ttl: float = 60) -> CatalogService:
    none = cast(Any, None)  # menu() never touches the repositories
    return CatalogService(none, {}, none, 60, none, menu_ttl=menu_ttl)


class Builder:
    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()

    async def __call__(self) -> str:
        self.calls += 1
        await self.gate.wait()
        return f"menu {self.calls}"


async def test_concurrent_callers_share_one_build() -> None:
    service, build = catalog(), Builder()
    waiting = [asyncio.create_task(service.menu("k", build)) for _ in range(50)]
    await asyncio.sleep(0)
    build.gate.set()
    assert {await task for task in waiting} == {("menu 1", False)}
    assert build.calls == 1
    assert await service.menu("k", build) == ("menu 1", True)


async def test_a_change_drops_kept_menus() -> None:
    service, build = catalog(), Builder()
    build.gate.set()
    assert (await service.menu("k", build))[0] == "menu 1"
    service.changed()
    assert await service.menu("k", build) == ("menu 2", False)


async def test_a_menu_built_across_a_change_is_not_kept() -> None:
    service, build = catalog(), Builder()
    first = asyncio.create_task(service.menu("k", build))
    await asyncio.sleep(0)
    service.changed()  # the catalog changed while the menu was being built
    build.gate.set()
    assert (await first)[0] == "menu 1"  # that caller still gets an answer
    assert await service.menu("k", build) == ("menu 2", False)


async def test_an_expired_menu_is_served_while_it_is_rebuilt() -> None:
    service, build = catalog(menu_ttl=0), Builder()
    build.gate.set()
    await service.menu("k", build)
    build.gate.clear()
    assert await service.menu("k", build) == ("menu 1", True)  # stale, rebuild started
    assert await service.menu("k", build) == ("menu 1", True)  # no second rebuild
    build.gate.set()
    await asyncio.sleep(0.01)
    assert build.calls == 2
    assert (await service.menu("k", build))[0] == "menu 2"


async def test_a_failed_build_reaches_every_waiter_and_is_retried() -> None:
    service = catalog()
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise LookupError("gone")

    results = await asyncio.gather(
        *(service.menu("k", failing) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, LookupError) for r in results) and calls == 1
    with pytest.raises(LookupError):
        await service.menu("k", failing)
    assert calls == 2
