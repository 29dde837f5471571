"""`python -m bot`: run the bot with long polling."""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import ValidationError

from bot.app import build_app, settle_heap
from bot.config import Settings
from bot.logs import configure_logging
from shop.services.instances import StartupRefused


def _load_settings() -> Settings:
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        sys.exit(f"Configuration error (see .env.example):\n{problems}")


async def main() -> None:
    settings = _load_settings()
    configure_logging(settings.log_level, settings.secrets())
    if not settings.smspalm_api_key and not settings.sandbox:
        logging.getLogger(__name__).warning(
            "No provider is configured: set SMSPALM_API_KEY or SANDBOX=1 to sell numbers."
        )
    try:
        app = await build_app(settings)
    except StartupRefused as exc:
        sys.exit(str(exc))
    settle_heap()
    try:
        await app.run_polling()
    finally:
        await app.close()


if __name__ == "__main__":
    asyncio.run(main())
