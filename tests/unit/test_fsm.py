"""storage.fsm.NoIsolation: like aiogram's disabled isolation, a lock that never waits and
lets errors through."""

from __future__ import annotations

import asyncio

import pytest
from aiogram.fsm.storage.base import StorageKey

from storage.fsm import NoIsolation

KEY = StorageKey(bot_id=1, chat_id=5, user_id=5)


async def test_updates_of_one_chat_are_not_serialized() -> None:
    isolation = NoIsolation()
    entered: list[int] = []

    async def update(number: int) -> None:
        async with isolation.lock(KEY):
            entered.append(number)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(asyncio.gather(update(1), update(2)), timeout=1)
    assert sorted(entered) == [1, 2]
    async with isolation.lock(KEY), isolation.lock(KEY):  # nested, same chat
        pass
    await isolation.close()


async def test_an_error_inside_the_lock_is_not_swallowed() -> None:
    with pytest.raises(RuntimeError, match="handler failed"):
        async with NoIsolation().lock(KEY):
            raise RuntimeError("handler failed")
