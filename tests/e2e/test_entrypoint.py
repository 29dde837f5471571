"""`python -m bot` itself: settings from the environment, long polling, the HTTP listener's
health paths, SIGTERM, clean logs."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx

from tests.conftest import TOKEN, free_port
from tests.fakes.telegram import FakeTelegram


async def test_python_m_bot_serves_and_stops_on_sigterm(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": telegram.base_url,
        "DATABASE_PATH": str(tmp_path / "db" / "bot.db"),
        "SANDBOX": "1",
        "ADMIN_IDS": "1",
        "LOG_LEVEL": "DEBUG",
        "HTTP_PORT": str(free_port()),
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
        user = telegram.user(4242, first_name="Dora")
        for _ in range(300):
            if telegram.calls_to("getUpdates"):
                break
            await asyncio.sleep(0.05)
        await user.send("/start")
        menu = await user.wait_for("Hi, Dora", timeout=20)
        assert "Sandbox mode" in menu.plain
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{env['HTTP_PORT']}") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    logs = output.decode()
    assert process.returncode == 0, logs[-2000:]
    assert TOKEN not in logs and TOKEN.split(":")[1] not in logs
    assert (tmp_path / "db" / "bot.db").exists()
