"""`python -m bot`: run the bot (long polling, or webhook mode when `WEBHOOK_BASE_URL` is set)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from dotenv import dotenv_values
from pydantic import ValidationError

from bot.app import WebhookRefused, build_app, settle_heap
from bot.config import REMOVED_SETTINGS, Settings
from bot.logs import configure_logging
from shop.services.instances import StartupRefused
from web.server import ListenerError


def _load_settings() -> Settings:
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        sys.exit(f"Configuration error (see .env.example):\n{problems}")


def _warn_removed_settings() -> None:
    """Name the settings of earlier versions still set, and what replaced them."""
    found = {k.upper() for k in os.environ} | {k.upper() for k in dotenv_values(".env")}
    for name, instead in REMOVED_SETTINGS.items():
        if name in found:
            logging.getLogger(__name__).warning(
                "%s is no longer read: use %s (see .env.example)", name, instead
            )


async def main() -> None:
    settings = _load_settings()
    configure_logging(settings.log_level, settings.secrets())
    _warn_removed_settings()
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
        await app.run()
    except (ListenerError, WebhookRefused) as exc:
        sys.exit(str(exc))
    finally:
        await app.close()


if __name__ == "__main__":
    asyncio.run(main())
