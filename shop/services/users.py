"""Who is talking to the bot."""

from __future__ import annotations

import time

from shop.errors import InvalidInput, NotFound
from shop.i18n import _, i18n
from shop.models import User
from shop.ports import UserRepository

SEEN_EVERY = 3600  # last_seen is refreshed at most this often (one write an hour, not per update)


class UserService:
    def __init__(self, users: UserRepository) -> None:
        self.users = users

    async def seen(
        self, user_id: int, username: str | None, first_name: str, language: str | None
    ) -> User:
        """The user behind an update, registered on first sight; when nothing changed, one
        read at most (none when this process keeps the row: `UserRepository.current`)."""
        user = await self.users.current(user_id)
        if (
            user is not None
            and user.is_active
            and user.last_seen > time.time() - SEEN_EVERY
            and (user.username, user.first_name, user.language) == (username, first_name, language)
        ):
            return user
        return await self.users.upsert(user_id, username, first_name, language)

    async def get(self, user_id: int) -> User | None:
        return await self.users.get(user_id)

    async def set_locale(self, user_id: int, locale: str) -> User:
        """Remember the user's language; an unknown one raises InvalidInput."""
        if locale not in i18n.available_locales:
            raise InvalidInput(_("This language is not available."))
        user = await self.users.set_locale(user_id, locale)
        if user is None:
            raise NotFound()
        return user

    async def blocked_bot(self, user_id: int) -> None:
        await self.users.set_active(user_id, False)
