"""The one outbound HTTP client every upstream client shares."""

from __future__ import annotations

import httpx

from bot.config import Settings


def create_http_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.http_timeout_seconds, connect=5.0),
        headers={"User-Agent": "numbot/0.1"},
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
    )
