"""REDIS_URL: optional, a redis URL when set, its password treated as a secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config import Settings
from bot.factory.providers import local_budget
from bot.factory.redis import budget_factory, create_redis, create_shared_fsm
from shop.providers.budget import RequestBudget

TOKEN = "123456789:AAH-secret-token-value-0000000000"


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, bot_token=TOKEN, **values)  # type: ignore[call-arg]


def test_without_redis_url_everything_stays_in_process() -> None:
    settings = _settings(redis_url="")
    assert settings.redis_url is None and settings.redis_prefix == "numbot"
    assert create_redis(settings) is None and create_shared_fsm(settings) is None
    assert budget_factory(settings, None) is local_budget
    assert isinstance(local_budget("smspalm", 100, "key"), RequestBudget)


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "postgres://x/y"])
def test_a_redis_url_must_be_one(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        _settings(redis_url=url)
    assert "REDIS_URL" in str(info.value)


def test_the_redis_password_is_a_secret() -> None:
    settings = _settings(redis_url="redis://:hunter2-pass@redis.internal:6379/0")
    assert "hunter2-pass" in settings.secrets()
    assert "hunter2-pass" not in repr(settings)


@pytest.mark.parametrize("prefix", ["", "x" * 65])
def test_the_prefix_is_short_and_not_empty(prefix: str) -> None:
    with pytest.raises(ValidationError):
        _settings(redis_prefix=prefix)
