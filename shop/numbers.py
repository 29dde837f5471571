"""Whole numbers that come from users (commands, callback data): ASCII digits, bounded.

`str.isdigit()` and `int()` disagree (`"²".isdigit()` is true, `int("²")` raises), `int()`
also takes signs, spaces, underscores and other scripts' digits, and SQLite rejects integers
above 2**63 - 1. These helpers accept only `[0-9]+` and never return more than `MAX_ID`.
"""

from __future__ import annotations

MAX_ID = 2**63 - 1  # SQLite's largest INTEGER
_MAX_DIGITS = len(str(MAX_ID))


def is_digits(text: str) -> bool:
    """True for one or more ASCII digits and nothing else."""
    return text.isascii() and text.isdigit()


def parse_uint(text: str, most: int = MAX_ID) -> int | None:
    """`text` as a whole number, or None unless it is ASCII digits only. A larger number than
    `most` is read as `most`: for an id, `MAX_ID` names no row, so it is "not found" like any
    id that does not exist; a caller with a tighter range checks it after."""
    if not is_digits(text):
        return None
    if len(text.lstrip("0")) > _MAX_DIGITS:
        return most
    return min(int(text), most)
