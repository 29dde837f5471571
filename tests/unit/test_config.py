from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest
from pydantic import ValidationError

from bot.config import Settings
from bot.logs import RedactingFormatter

TOKEN = "123456789:AAH-secret-token-value-0000000000"


def test_defaults_and_lists() -> None:
    settings = Settings(_env_file=None, bot_token=TOKEN, admin_ids="1, 2,3")  # type: ignore[call-arg]
    assert settings.admin_ids == frozenset({1, 2, 3})
    assert settings.telegram_api_url == "https://api.telegram.org"
    assert settings.order_timeout_seconds == 1200 and settings.poll_interval_seconds == 5
    assert str(settings.database_path) == "data/bot.db"
    assert settings.smspalm_servers == ("servertwo", "serverone")


@pytest.mark.parametrize("token", ["", "nonsense", "abc:def", "123:short"])
def test_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, bot_token=token)  # type: ignore[call-arg]
    assert "BOT_TOKEN" in str(info.value)


def test_rate_is_required_with_a_key() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, bot_token=TOKEN, smspalm_api_key="k")  # type: ignore[call-arg]
    assert "SMSPALM_RATE" in str(info.value)


def test_missing_token_exits_with_a_clear_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "BOT_TOKEN" in result.stderr and "Configuration error" in result.stderr


def test_secrets_are_redacted_from_logs() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(message)s", [TOKEN, "palm-secret-key"]))
    log = logging.getLogger("test.redaction")
    log.addHandler(handler)
    try:
        log.warning("GET https://x/handler?api_key=%s&action=getBalance", "palm-secret-key")
        try:
            raise RuntimeError(f"https://api.telegram.org/bot{TOKEN}/getMe failed")
        except RuntimeError:
            log.exception("boom")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "palm-secret-key" not in text and TOKEN not in text and "***" in text
