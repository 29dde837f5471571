"""bot.logs: secrets are redacted, and aiogram's line per update shows only at DEBUG."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bot.logs import configure_logging

SECRET = "123456:ABCDEF-secret-token"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    event = logging.getLogger("aiogram.event")
    event_level = event.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    event.setLevel(event_level)


def test_secrets_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", [SECRET])
    logging.getLogger("bot.test").info("calling https://api.example/bot%s/getMe", SECRET)
    err = capsys.readouterr().err
    assert "bot***/getMe" in err
    assert SECRET not in err


@pytest.mark.parametrize(
    ("level", "shown"), [("INFO", False), ("WARNING", False), ("DEBUG", True)]
)
def test_the_line_per_update_shows_only_at_debug(
    level: str, shown: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level, [SECRET])
    logging.getLogger("aiogram.event").info("Update id=%s is handled.", 7)
    logging.getLogger("aiogram.event").warning("Update id=%s failed.", 8)
    err = capsys.readouterr().err
    assert ("Update id=7 is handled." in err) is shown
    assert "Update id=8 failed." in err
