"""Telegram only: one router per feature, built by a function, with its screens (texts and
keyboards) beside it; the callback data factories, middlewares, the error router, and the
Telegram adapters the services talk through (notifier, broadcaster, Stars refunds)."""
