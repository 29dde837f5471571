"""`python -m bot` in webhook mode: setWebhook at start, updates by webhook, never getUpdates,
SIGTERM stops it cleanly, and neither the token nor the webhook secret reaches the logs."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

from tests.conftest import TOKEN, free_port
from tests.fakes.telegram import FakeTelegram

SECRET = "entrypoint-webhook-SECRET_42"


async def test_python_m_bot_in_webhook_mode(telegram: FakeTelegram, tmp_path: Path) -> None:
    telegram.webhook_retry_delay = 0.05
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": telegram.base_url,
        "DATABASE_PATH": str(tmp_path / "db" / "bot.db"),
        "SANDBOX": "1",
        "ADMIN_IDS": "1",
        "LOG_LEVEL": "DEBUG",
        "HTTP_PORT": str(port),
        "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_SECRET": SECRET,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        user = telegram.user(4243, first_name="Eve")
        await user.send("/start")  # pending until the bot sets its webhook, then delivered
        menu = await user.wait_for("Hi, Eve", timeout=30)
        assert "Sandbox mode" in menu.plain
        [call] = telegram.calls_to("setWebhook")
        assert call.params["url"] == f"http://127.0.0.1:{port}/telegram/webhook"
        assert call.params["secret_token"] == SECRET
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    logs = output.decode()
    assert process.returncode == 0, logs[-2000:]
    assert telegram.calls_to("getUpdates") == []
    assert TOKEN.split(":")[1] not in logs and SECRET not in logs
    assert "Serving Telegram updates at" in logs


async def test_a_busy_port_and_removed_settings_are_named(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": telegram.base_url,
            "DATABASE_PATH": str(tmp_path / "bot.db"),
            "SANDBOX": "1",
            "HTTP_PORT": str(port),
            "PAPSMS_WEBHOOK_PORT": "8081",  # an earlier version's setting
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    logs = output.decode()
    assert process.returncode == 1, logs[-2000:]
    assert f"cannot listen on 127.0.0.1:{port}" in logs
    assert "PAPSMS_WEBHOOK_PORT is no longer read: use HTTP_PORT and PAPSMS_WEBHOOK=1" in logs
    assert "Traceback" not in logs
    assert telegram.calls_to("getUpdates") == []
