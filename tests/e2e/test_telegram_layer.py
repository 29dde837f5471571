"""The Telegram layer is stock aiogram: building the bot changes nothing in aiogram or
pydantic, the session is aiogram's aiohttp session with orjson through its documented
arguments, and the services reach handlers through the Dispatcher's workflow data."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import get_type_hints

import aiogram
import orjson
import pydantic
from aiogram.client.context_controller import BotContextController
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.dispatcher.middlewares.manager import MiddlewareManager
from aiogram.fsm.storage.memory import DisabledEventIsolation
from aiogram.fsm.storage.redis import RedisEventIsolation
from aiogram.methods.base import TelegramMethod
from aiogram.types.base import TelegramObject

from bot.factory.services import Services
from tests.conftest import BotHarness
from tests.e2e.helpers import start
from tests.fakes.telegram import FakeUser

LIBRARIES = (Path(aiogram.__file__).parent, Path(pydantic.__file__).parent)


def _shipped(function: object) -> bool:
    """Whether `function` (unwrapped) is defined in aiogram's or pydantic's own files."""
    source = inspect.getsourcefile(inspect.unwrap(function))  # type: ignore[arg-type]
    assert source is not None
    return any(Path(source).is_relative_to(library) for library in LIBRARIES)


def _classes(root: type) -> list[type]:
    found, pending = [], [root]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


async def test_building_the_bot_leaves_aiogram_as_shipped(
    running: BotHarness, alice: FakeUser
) -> None:
    await start(alice)  # a whole update handled, answer sent
    for cls in _classes(BotContextController):
        hook = cls.__dict__.get("model_post_init")
        assert hook is None or _shipped(hook), cls
        assert "_bot" not in cls.__dict__ or not isinstance(cls.__dict__["_bot"], property), cls
    for owner in (TelegramObject, TelegramMethod):
        assert _shipped(owner.__dict__["remove_unset"].__func__)
    for name in ("wrap_middlewares", "__iter__", "__reversed__"):
        member = MiddlewareManager.__dict__.get(name)  # else inherited from the stdlib
        function = member.__func__ if isinstance(member, staticmethod) else member
        assert function is None or _shipped(function), name


async def test_the_session_is_aiogram_s_own_with_orjson(running: BotHarness) -> None:
    app = running.app
    assert app is not None
    session = app.bot.session
    assert type(session) is AiohttpSession
    assert session.json_loads is orjson.loads
    assert session.api.base.startswith(running.settings.telegram_api_url)


async def test_services_ride_in_the_workflow_data(running: BotHarness) -> None:
    app = running.app
    assert app is not None
    names = set(get_type_hints(Services))
    assert names <= set(app.dp.workflow_data)
    assert app.dp.workflow_data["orders"] is app.orders
    shared = running.settings.redis_url is not None  # the PostgreSQL + Redis variant
    isolation = RedisEventIsolation if shared else DisabledEventIsolation
    assert type(app.dp.fsm.events_isolation) is isolation
