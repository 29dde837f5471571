"""`python -m bot`: run the bot (long polling, or webhook mode when `WEBHOOK_BASE_URL` is set).

`python -m bot migrate` applies the database migrations and exits;
`python -m bot copy-db --from sqlite:///data/bot.db --to postgresql://...` moves a shop's data
into an empty database (see storage/copy.py).
"""

from __future__ import annotations

import argparse
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


def _database_setting() -> str:
    """DATABASE_URL, else sqlite:/// + DATABASE_PATH, from the environment or `.env` (these
    commands need no BOT_TOKEN)."""
    values = {k.upper(): v for k, v in dotenv_values(".env").items() if v}
    values.update({k.upper(): v for k, v in os.environ.items() if v})
    if "DATABASE_URL" in values:
        return values["DATABASE_URL"]
    return f"sqlite:///{values.get('DATABASE_PATH', 'data/bot.db')}"


async def migrate(url: str) -> None:
    from storage.db import Database, safe_url
    from storage.migrate import open_database

    # applies what is missing (one instance at a time on PostgreSQL)
    db = await open_database(Database(url))
    await db.close()
    print(f"Migrated {safe_url(url)}")


async def copy_db(source: str, target: str) -> int:
    from storage.copy import CopyRefused, copy_database

    try:
        report = await copy_database(source, target)
    except CopyRefused as exc:
        print(f"Nothing copied: {exc}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    if not report.ok:
        print("The copy does not match its source: do not switch to it.", file=sys.stderr)
        return 1
    print("Copied. Point DATABASE_URL at the target and start the bot.")
    return 0


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    up = commands.add_parser("migrate", help="apply the database migrations and exit")
    up.add_argument("--url", help="the database (default: DATABASE_URL / DATABASE_PATH)")
    copy = commands.add_parser("copy-db", help="copy every table into an empty database")
    copy.add_argument("--from", dest="source", help="default: DATABASE_URL / DATABASE_PATH")
    copy.add_argument("--to", dest="target", required=True, help="e.g. postgresql://...")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "migrate":
        asyncio.run(migrate(args.url or _database_setting()))
    elif args.command == "copy-db":
        sys.exit(asyncio.run(copy_db(args.source or _database_setting(), args.target)))
    else:
        asyncio.run(main())


if __name__ == "__main__":
    cli(sys.argv[1:])
