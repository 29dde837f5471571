"""Country names and flags from pycountry (ISO 3166), not a hand-made table."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

import pycountry

# Upstream spellings that pycountry's lookup does not know; mapped by name, not by id.
_ALIASES = {
    "usa": "US",
    "united states of america": "US",
    "uk": "GB",
    "england": "GB",
    "russia": "RU",
    "south korea": "KR",
    "korea": "KR",
    "north korea": "KP",
    "vietnam": "VN",
    "laos": "LA",
    "iran": "IR",
    "syria": "SY",
    "moldova": "MD",
    "tanzania": "TZ",
    "bolivia": "BO",
    "venezuela": "VE",
    "ivory coast": "CI",
    "cote d'ivoire": "CI",
    "czech republic": "CZ",
    "macedonia": "MK",
    "taiwan": "TW",
    "palestine": "PS",
    "congo (dem. republic)": "CD",
    "dr congo": "CD",
    "turkey": "TR",
    "kosovo": "XK",
}


SLUG_CHARS = 16
HASH_CHARS = 8


@dataclass(frozen=True)
class CountryInfo:
    code: str
    name: str
    flag: str


def unmapped_code(name: str) -> str:
    """The key of a country pycountry does not know: `x-<slug>-<hash>`.

    The slug (its first SLUG_CHARS characters) keeps the key readable; the hash of the whole
    name (case and spacing ignored) keeps two names that share their first letters apart, so
    neither menus nor purchases can mix them up. At most 27 characters, [a-z0-9-] only, so
    every callback that carries it stays far below 64 bytes.
    """
    normal = " ".join(name.split()).casefold()
    slug = re.sub(r"[^a-z0-9]+", "-", normal).strip("-")[:SLUG_CHARS].strip("-") or "unknown"
    digest = hashlib.sha256(normal.encode()).hexdigest()[:HASH_CHARS]
    return f"x-{slug}-{digest}"


def _display_name(country: object) -> str:
    return str(getattr(country, "common_name", None) or getattr(country, "name", ""))


@lru_cache(maxsize=4096)
def resolve(name_or_code: str) -> CountryInfo:
    """ISO info for an upstream country name or code; unknown names keep their own name."""
    text = name_or_code.strip()
    iso = _ALIASES.get(text.lower())
    country = None
    if iso == "XK":
        return CountryInfo("XK", "Kosovo", "🇽🇰")
    try:
        country = pycountry.countries.lookup(iso or text)
    except LookupError:
        try:
            matches = pycountry.countries.search_fuzzy(text)
            country = matches[0] if len(matches) == 1 else None
        except LookupError:
            country = None
    if country is None:
        return CountryInfo(unmapped_code(text), text, "🏳️")
    return CountryInfo(country.alpha_2, _display_name(country), getattr(country, "flag", ""))


def is_iso(code: str) -> bool:
    return len(code) == 2 and code.isalpha() and code.isupper()
