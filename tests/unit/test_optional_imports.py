"""A bot without `REDIS_URL` never imports the Redis client (about 6 MB of memory)."""

from __future__ import annotations

import subprocess
import sys


def test_the_bot_imports_no_redis_client() -> None:
    code = (
        "import sys, bot.app, bot.__main__;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis'"
        " or m == 'aiogram.fsm.storage.redis'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
