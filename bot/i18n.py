"""The translation layer: gettext catalogs under `bot/locales/<lang>/LC_MESSAGES/messages.po`.

Every string a user sees goes through `_()` (or `__()` where it must be resolved later, such as
module-level constants). The locale of an update is set by the user middleware; code that runs
outside an update (jobs, notifications) wraps its sends in `i18n.use_locale(locale_of(user))`.

English is the source language, so it needs no catalog. Adding a language = adding one `.po`.
Catalogs are compiled to `.mo` at install; a catalog without a fresh `.mo` (an editable checkout)
is compiled in memory at start, so a `.po` edit never needs a manual step.
"""

from __future__ import annotations

import gettext
import io
from pathlib import Path

from aiogram.utils.i18n import I18n
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from storage.models import User

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
DEFAULT_LOCALE = "en"


class Translator(I18n):
    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        translations: dict[str, gettext.GNUTranslations] = {}
        for folder in sorted(self.path.iterdir()):
            po_path = folder / "LC_MESSAGES" / f"{self.domain}.po"
            mo_path = po_path.with_suffix(".mo")
            if mo_path.exists() and (
                not po_path.exists() or mo_path.stat().st_mtime >= po_path.stat().st_mtime
            ):
                with mo_path.open("rb") as fp:
                    translations[folder.name] = gettext.GNUTranslations(fp)
            elif po_path.exists():
                translations[folder.name] = gettext.GNUTranslations(compile_po(po_path))
        return translations

    @property
    def available_locales(self) -> tuple[str, ...]:
        return (DEFAULT_LOCALE, *(name for name in self.locales if name != DEFAULT_LOCALE))


def compile_po(po_path: Path) -> io.BytesIO:
    """A `.po` catalog compiled to `.mo` bytes (fuzzy entries are left out, as msgfmt does)."""
    with po_path.open("rb") as fp:
        catalog = read_po(fp, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return buffer


i18n = Translator(path=LOCALES_DIR, default_locale=DEFAULT_LOCALE, domain=DOMAIN)
_ = i18n.gettext
__ = i18n.lazy_gettext


def locale_of(user: User | None) -> str:
    """The user's chosen language, else their Telegram language when we have it, else English."""
    if user is None:
        return DEFAULT_LOCALE
    for candidate in (user.locale, user.language):
        if candidate:
            base = candidate.split("-", 1)[0].lower()
            if base in i18n.available_locales:
                return base
    return DEFAULT_LOCALE
