"""How many SMS parts a text costs, counted the way carriers count (3GPP TS 23.038 / 23.040).

A text made only of GSM 03.38 default-alphabet characters is sent as GSM-7: 160 septets in a
single SMS, 153 per part once it needs more (the user-data header takes the rest). Characters of
the extension table (``^ { } \\ [ ~ ] | €`` and form feed) take two septets (escape + char) and
are never split across parts. Any other character makes the whole text UCS-2: 70 UTF-16 code
units in a single SMS, 67 per part, and a character outside the BMP (most emoji) is a surrogate
pair of two units that is never split across parts either.

National language shift tables are not used (almost no carrier applies them) and characters are
not transliterated: "ç" is not "Ç", so it makes the text UCS-2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"  # 0x1B (escape) is not a character of its own
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE = 160
GSM7_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67


@dataclass(frozen=True)
class SegmentInfo:
    """The encoding, the size in its units and the number of SMS parts of one text.

    `per_segment` is the capacity of one part for this text: the single-SMS size (160 / 70)
    when it fits in one, the concatenated size (153 / 67) when it does not.
    """

    encoding: Encoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int
    per_segment: int


def is_gsm7(text: str) -> bool:
    """True if every character is in the GSM-7 default alphabet or its extension table."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _gsm7_width(ch: str) -> int:
    return 2 if ch in GSM7_EXTENSION else 1


def _ucs2_width(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _parts(widths: list[int], capacity: int) -> int:
    """Pack characters into parts of `capacity` units without splitting any character."""
    parts, used = 1, 0
    for width in widths:
        if used + width > capacity:
            parts += 1
            used = 0
        used += width
    return parts


def segments(text: str) -> SegmentInfo:
    """Count the SMS parts of `text`. An empty text is not a message: ValueError."""
    if not text:
        raise ValueError("an SMS text cannot be empty")
    if is_gsm7(text):
        encoding: Encoding = "GSM-7"
        widths = [_gsm7_width(ch) for ch in text]
        single, part = GSM7_SINGLE, GSM7_PART
    else:
        encoding = "UCS-2"
        widths = [_ucs2_width(ch) for ch in text]
        single, part = UCS2_SINGLE, UCS2_PART
    units = sum(widths)
    if units <= single:
        return SegmentInfo(encoding, units, 1, single)
    return SegmentInfo(encoding, units, _parts(widths, part), part)
