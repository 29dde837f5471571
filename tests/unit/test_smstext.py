"""Segment counting as carriers do it: GSM-7 septets or UCS-2 code units, nothing split."""

from __future__ import annotations

import pytest

from shop.smstext import GSM7_BASIC, GSM7_EXTENSION, SegmentInfo, is_gsm7, segments


def test_empty_text_is_refused() -> None:
    with pytest.raises(ValueError):
        segments("")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", SegmentInfo("GSM-7", 1, 1, 160)),
        ("a" * 160, SegmentInfo("GSM-7", 160, 1, 160)),
        ("a" * 161, SegmentInfo("GSM-7", 161, 2, 153)),
        ("a" * 153 * 2, SegmentInfo("GSM-7", 306, 2, 153)),
        ("a" * (153 * 2 + 1), SegmentInfo("GSM-7", 307, 3, 153)),
        ("a" * 153 * 3, SegmentInfo("GSM-7", 459, 3, 153)),
    ],
)
def test_gsm7_boundaries(text: str, expected: SegmentInfo) -> None:
    assert segments(text) == expected


def test_euro_counts_double() -> None:
    assert segments("€") == SegmentInfo("GSM-7", 2, 1, 160)
    assert segments("€" * 80) == SegmentInfo("GSM-7", 160, 1, 160)
    assert segments("€" * 80 + "a").segments == 2
    # 159 + 2 = 161 septets: the extension char pushes a 160-char text into two parts.
    assert segments("a" * 159 + "€") == SegmentInfo("GSM-7", 161, 2, 153)


@pytest.mark.parametrize("ch", sorted(GSM7_EXTENSION))
def test_every_extension_char_is_two_septets(ch: str) -> None:
    assert segments(ch) == SegmentInfo("GSM-7", 2, 1, 160)


def test_extension_char_is_not_split_across_parts() -> None:
    # 152 + [€ would need septets 153-154] -> € opens part two: 152 | 2+152=154 -> a third part.
    info = segments("a" * 152 + "€" + "a" * 152)
    assert info == SegmentInfo("GSM-7", 306, 3, 153)
    # Same length with the € fitting exactly at the end of part one: two parts.
    assert segments("a" * 151 + "€" + "a" * 153).segments == 2
    # An extension char that ends part one exactly.
    assert segments("a" * 151 + "€" + "a" * 10) == SegmentInfo("GSM-7", 163, 2, 153)
    # Only extension chars: 76 fit in a part (152 septets), so 306 septets take three parts.
    assert segments("[" * 153) == SegmentInfo("GSM-7", 306, 3, 153)
    assert segments("a" + "[" * 80) == SegmentInfo("GSM-7", 161, 2, 153)


def test_whole_basic_alphabet_is_single_septets() -> None:
    text = "".join(sorted(GSM7_BASIC))
    assert len(GSM7_BASIC) == 127  # 128 positions minus the escape
    assert segments(text) == SegmentInfo("GSM-7", 127, 1, 160)
    assert is_gsm7("Hello @ £5, ¿Qué tal? Ñoño Øre ΔΩ\n")


@pytest.mark.parametrize("ch", ["ç", "`", "δ", "Я", "ä\u0301", "\u00a0", "’"])
def test_non_gsm_chars_switch_to_ucs2(ch: str) -> None:
    info = segments("a" * 100 + ch)
    assert info.encoding == "UCS-2"
    assert info.units == 100 + len(ch)
    assert (info.segments, info.per_segment) == (2, 67)


def test_cyrillic_is_ucs2() -> None:
    assert segments("Привет") == SegmentInfo("UCS-2", 6, 1, 70)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Я" * 70, SegmentInfo("UCS-2", 70, 1, 70)),
        ("Я" * 71, SegmentInfo("UCS-2", 71, 2, 67)),
        ("Я" * 67 * 2, SegmentInfo("UCS-2", 134, 2, 67)),
        ("Я" * (67 * 2 + 1), SegmentInfo("UCS-2", 135, 3, 67)),
    ],
)
def test_ucs2_boundaries(text: str, expected: SegmentInfo) -> None:
    assert segments(text) == expected


def test_emoji_is_two_units() -> None:
    assert segments("😀") == SegmentInfo("UCS-2", 2, 1, 70)
    assert segments("😀" * 35) == SegmentInfo("UCS-2", 70, 1, 70)
    assert segments("😀" * 35 + "a") == SegmentInfo("UCS-2", 71, 2, 67)
    assert segments("a" * 69 + "😀") == SegmentInfo("UCS-2", 71, 2, 67)
    # BMP symbols like ☺ are one unit.
    assert segments("☺" * 70) == SegmentInfo("UCS-2", 70, 1, 70)


def test_emoji_is_not_split_across_parts() -> None:
    # 66 + [😀 would need units 67-68] -> it opens part two: 66 | 2+66=68 -> a third part.
    assert segments("я" * 66 + "😀" + "я" * 66) == SegmentInfo("UCS-2", 134, 3, 67)
    # The emoji ends part one exactly: two parts.
    assert segments("я" * 65 + "😀" + "я" * 67) == SegmentInfo("UCS-2", 134, 2, 67)
