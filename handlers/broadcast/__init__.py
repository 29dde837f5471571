"""Broadcasts: a message copied to every active user, with live progress."""
