"""Three adjustments to aiogram's hot path, applied once by `build_app` (`apply_speedups`).

Each replaces a piece of aiogram's (or pydantic's) per-update work with one that behaves the
same and costs a fraction, was found with a sampling profiler on the dispatch benchmark, and
checks before it applies that the code it replaces is the code it was written against: an
aiogram release that changes it keeps aiogram's path, slower but right. Unit tests compare
each with the original (tests/unit/test_speedups.py).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from aiogram.client.context_controller import BotContextController
from aiogram.dispatcher.middlewares.manager import MiddlewareManager
from aiogram.methods.base import TelegramMethod
from aiogram.types.base import UNSET_TYPE, TelegramObject

log = logging.getLogger(__name__)

AIOGRAM_POST_INIT = inspect.unwrap(BotContextController.__dict__["model_post_init"])
AIOGRAM_WRAP_MIDDLEWARES = MiddlewareManager.__dict__["wrap_middlewares"].__func__


def apply_speedups() -> None:
    """All three adjustments; idempotent."""
    bind_bots_directly()
    lighten_middleware_chains()
    lighten_unset_check()


# -- binding objects to their bot ---------------------------------------------------------------


def _bind_bot(self: BotContextController, context: Any, /) -> None:
    """What pydantic's wrapped `BotContextController.model_post_init` ends with, in one step:
    the private attributes are `{"_bot": <the bot in the context, or None>}`."""
    bot = context.get("bot") if context else None
    if len(type(self).__private_attributes__) == 1:
        object.__setattr__(self, "__pydantic_private__", {"_bot": bot})
    else:
        # A subclass made later with private attributes of its own: pydantic wraps this hook
        # in theirs, which has set those up already.
        private = self.__pydantic_private__
        assert private is not None
        private["_bot"] = bot


def _read_bot(self: BotContextController) -> Any:
    """`self._bot`, read straight from pydantic's private storage."""
    try:
        return self.__pydantic_private__["_bot"]  # type: ignore[index]
    except (KeyError, TypeError):
        raise AttributeError("_bot") from None


def bind_bots_directly() -> int:
    """Give every aiogram object (each `Update`, `User`, `Message`, button and Bot API method)
    a one-step `model_post_init` and a direct read of its bot; returns how many classes got
    the hook. Idempotent.

    pydantic wraps `model_post_init` of a model with private attributes, in each subclass
    anew: it first walks the private attributes through their defaults, then aiogram's own
    hook stores the bot through `BaseModel.__setattr__`. That is about 8 µs for each of the
    six objects in one callback update, and for each button and method the bot builds: half
    the cost of parsing an update. Only classes whose hook is still that unchanged chain and
    whose only private attribute is `_bot` are touched, so an aiogram release that adds
    another one keeps pydantic's path, slower but right.

    Reading `obj._bot` (aiogram does it to answer a query, to send, for `obj.bot`) went
    through `BaseModel.__getattr__`, which probes the private attribute for a `__get__` by
    raising and catching an AttributeError: 5 µs a read, several reads a click. A property
    on `BotContextController` reads the same dict in 0.3 µs; writes still go through
    pydantic's `__setattr__` into that dict."""
    if "_bot" not in BotContextController.__dict__ and set(
        BotContextController.__private_attributes__
    ) == {"_bot"}:
        BotContextController._bot = property(_read_bot)  # type: ignore[assignment]
    patched = 0
    pending: list[type[BotContextController]] = [BotContextController]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        hook = cls.__dict__.get("model_post_init")
        if hook is None or hook is _bind_bot:
            continue
        if (
            set(cls.__private_attributes__) == {"_bot"}
            and inspect.unwrap(hook) is AIOGRAM_POST_INIT
        ):
            cls.model_post_init = _bind_bot  # type: ignore[method-assign, assignment]
            patched += 1
    return patched


# -- middleware chains --------------------------------------------------------------------------

# sha256 of the source of aiogram 3's `MiddlewareManager.wrap_middlewares` that
# `_wrap_middlewares` reproduces.
WRAP_MIDDLEWARES_SHA256 = "be6ee962b6ba69a0e222fc7691ad4e55118573e27c6fea87198c22057f09c57a"


def _wrap_middlewares(middlewares: Sequence[Any], handler: Any) -> Any:
    """aiogram's `MiddlewareManager.wrap_middlewares` without `functools.wraps`, which copied
    the handler's name, docstring and attributes onto the innermost wrapper, on every call,
    for no reader: nothing looks at that wrapper but the chain itself."""

    def handler_wrapper(event: Any, kwargs: dict[str, Any]) -> Any:
        return handler(event, **kwargs)

    middleware: Any = handler_wrapper
    for m in reversed(middlewares):
        middleware = functools.partial(m, middleware)
    return middleware


def _iter_middlewares(self: MiddlewareManager) -> Iterator[Any]:
    return iter(self._middlewares)


def _reversed_middlewares(self: MiddlewareManager) -> Iterator[Any]:
    return reversed(self._middlewares)


def lighten_middleware_chains() -> bool:
    """aiogram builds a middleware chain five times per callback update (the update, then
    the callback query at the Dispatcher and at the router, outer and inner), and each build
    ran `functools.wraps` and walked its `MiddlewareManager` through the generic `Sequence`
    protocol (an index lookup and an `IndexError` per walk). Together that was about a
    twentieth of a click. Here the chain is built the same way, minus the copied name, and
    the manager iterates its list directly. Returns whether it applied."""
    current = MiddlewareManager.__dict__["wrap_middlewares"]
    if isinstance(current, staticmethod) and current.__func__ is _wrap_middlewares:
        return True
    try:
        source = inspect.getsource(MiddlewareManager.wrap_middlewares)
    except (OSError, TypeError):
        source = ""
    if hashlib.sha256(source.encode()).hexdigest() != WRAP_MIDDLEWARES_SHA256 or not isinstance(
        MiddlewareManager().__dict__.get("_middlewares"), list
    ):
        log.info("aiogram's middleware chains differ from the known ones; left as they are")
        return False
    MiddlewareManager.wrap_middlewares = staticmethod(_wrap_middlewares)  # type: ignore[method-assign, assignment]
    MiddlewareManager.__iter__ = _iter_middlewares  # type: ignore[method-assign, assignment]
    MiddlewareManager.__reversed__ = _reversed_middlewares  # type: ignore[method-assign, assignment]
    return True


# -- the UNSET check before each object is validated --------------------------------------------

# sha256 of the source of aiogram 3's `remove_unset` validators (`TelegramObject`'s, then
# `TelegramMethod`'s; their docstrings differ by a word) that `_remove_unset` reproduces.
REMOVE_UNSET_SHA256 = {
    TelegramObject: "f4b62e13e1d0a3f4980b9a06eb37b7ca9a3a620d11b9c302a32c3f00f03f4374",
    TelegramMethod: "0f16497e7d6207f087fc8b40b004da5e14ff026924e7f03a51ce8cec19253bc0",
}


# aiogram's own code of the two, for the tests that compare.
AIOGRAM_REMOVE_UNSET = {
    owner: owner.__dict__["remove_unset"].__func__.__code__ for owner in REMOVE_UNSET_SHA256
}


def _remove_unset(cls: type, values: Any) -> Any:
    """aiogram's `remove_unset`, rebuilding the dict only when an UNSET is in it (compared by
    exact type: `unittest.mock` makes its sentinels of that one class); otherwise the dict
    is handed on as it is, which pydantic only reads. Its code runs as the original
    function's, in whose module `UNSET_TYPE` is the same object."""
    if values.__class__ is not dict and not isinstance(values, dict):
        return values
    if UNSET_TYPE in map(type, values.values()):
        return {k: v for k, v in values.items() if not isinstance(v, UNSET_TYPE)}
    return values


def lighten_unset_check() -> int:
    """Before validating any Telegram object or Bot API method, aiogram drops the fields
    that hold its UNSET marker, by building a new dict of all the others: about 1.5 µs per
    object, a sixth of parsing an update, for a marker that is never in an update from
    Telegram and seldom in a method we build. The same check now scans the values in C and
    builds a new dict only when the marker is there (0.5 µs).

    pydantic compiled the validator into each of the 633 classes' schemas as a bound method
    of the one function, so it is that function's code that is replaced (its globals, where
    `UNSET_TYPE` lives, stay). Applies only where the source is the known one; returns how
    many of the two validators it changed."""
    changed = 0
    for owner, digest in REMOVE_UNSET_SHA256.items():
        function = owner.__dict__["remove_unset"].__func__
        if function.__code__ is _remove_unset.__code__:
            changed += 1
            continue
        try:
            source = inspect.getsource(function)
        except (OSError, TypeError):
            source = ""
        if (
            hashlib.sha256(source.encode()).hexdigest() != digest
            or function.__globals__.get("UNSET_TYPE") is not UNSET_TYPE
            or function.__code__.co_freevars
        ):
            log.info("aiogram's %s.remove_unset differs from the known one; left as it is", owner)
            continue
        function.__code__ = _remove_unset.__code__
        changed += 1
    return changed
