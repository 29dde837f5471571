"""Inbound HTTP adapters (aiohttp): upstream callbacks and webhooks."""
