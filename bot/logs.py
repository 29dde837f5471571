"""Logging, configured once; secrets are redacted from every line, tracebacks included."""

from __future__ import annotations

import logging
from collections.abc import Iterable


class RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def configure_logging(level: str, secrets: Iterable[str]) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO, and SMSPalm puts the API key in the query.
    for noisy in ("httpx", "httpcore", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # aiosqlite logs two DEBUG lines per database call, Alembic its plugins at every start.
    for noisy in ("aiosqlite", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # aiogram logs a line per update at INFO ("Update id=… is handled. Duration …"): at a
    # busy shop's rate that buries everything else, and it costs every click a formatted,
    # redacted, written line. It is shown at DEBUG.
    event_level = logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    logging.getLogger("aiogram.event").setLevel(event_level)
