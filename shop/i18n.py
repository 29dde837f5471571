"""The translation layer: gettext catalogs under `shop/locales/<lang>/LC_MESSAGES/messages.po`.

Every string a user sees goes through `_()` (or `__()` where it must be resolved later, such as
module-level constants). The locale of an update is set by the user middleware; code that runs
outside an update (jobs, notifications) wraps its sends in `i18n.use_locale(locale_of(user))`.

- `_("Balance: {amount}").format(amount=...)`: translated now, in the current locale.
- `ngettext("{n} recipient", "{n} recipients", n).format(n=n)`: plurals.
- `__("Main menu")`: a lazy constant, translated each time it is turned into a string.
- `lazy("Order #{id} failed", id=5)`: a message built now and translated when it is shown
  (`str()`), for texts made outside an update and sent to someone else (admin alerts).
- `N_("text")`: marks a string for extraction only; translate it later with `_(text)`.
- `AppError.user_message` class attributes are extracted too (see `extract_python`), and
  `user_text(error)` translates them at the moment they are shown.

English is the source language, so it needs no catalog. Adding a language = adding one `.po`.
Catalogs are compiled to `.mo` at install; a catalog without a fresh `.mo` (an editable checkout)
is compiled in memory at start, so a `.po` edit never needs a manual step.

Tooling (see README, "Translations"): `python -m shop.i18n extract` writes
`shop/locales/messages.pot` from the code and updates every catalog; `python -m shop.i18n check`
lists the messages a catalog lacks.
"""

from __future__ import annotations

import ast
import gettext
import io
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pycountry
from babel import Locale
from babel.dates import format_datetime
from babel.support import LazyProxy

from shop.models import User

if TYPE_CHECKING:
    from babel.messages.catalog import Catalog

# Babel's catalog tools (babel.messages: reading and writing .po, extraction) are imported
# where they are used: a bot installed with its compiled .mo catalogs never needs them.

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
DEFAULT_LOCALE = "en"
SOURCE_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("bot", "handlers", "shop", "storage", "web")
TEMPLATE = LOCALES_DIR / f"{DOMAIN}.pot"

# What the extractor looks for. `gettext` with three arguments is `i18n.gettext(s, p, n)`.
KEYWORDS: dict[str, Any] = {
    "_": {1: None, 3: (1, 2)},
    "__": {1: None, 3: (1, 2)},
    "gettext": {1: None, 3: (1, 2)},
    "ngettext": (1, 2),
    "lazy": None,
    "N_": None,
}


class Translator:
    """Gettext catalogs by language, and the current language of this context.

    The current language lives in a `ContextVar`, so each update (each asyncio task) has its
    own; `use_locale()` sets it for a block. English, the source language, needs no catalog.
    """

    def __init__(
        self, *, path: str | Path, default_locale: str = DEFAULT_LOCALE, domain: str = DOMAIN
    ) -> None:
        self.path = Path(path).resolve()
        self.default_locale = default_locale
        self.domain = domain
        self._current: ContextVar[str] = ContextVar("shop_locale", default=default_locale)
        self.locales = self.find_locales()

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
        return (self.default_locale, *(n for n in self.locales if n != self.default_locale))

    @property
    def current_locale(self) -> str:
        return self._current.get()

    def use_locale(self, locale: str) -> _LocaleScope:
        """`with i18n.use_locale("ru"): ...`: the block (and what it awaits) speaks `locale`."""
        return _LocaleScope(self._current, locale)

    def gettext(
        self, singular: str, plural: str | None = None, n: int = 1, locale: str | None = None
    ) -> str:
        """`singular` (or the plural form for `n`) in `locale`, by default the current one."""
        translations = self.locales.get(self.current_locale if locale is None else locale)
        if translations is None:
            return singular if n == 1 or plural is None else plural
        if plural is None:
            return translations.gettext(singular)
        return translations.ngettext(singular, plural, n)

    def lazy_gettext(
        self, singular: str, plural: str | None = None, n: int = 1, locale: str | None = None
    ) -> LazyProxy:
        """A text translated each time it is turned into a string (module-level constants)."""
        return LazyProxy(
            self.gettext, singular, plural=plural, n=n, locale=locale, enable_cache=False
        )


class _LocaleScope:
    """The context manager `Translator.use_locale` returns (a class: one per update is cheap)."""

    __slots__ = ("_locale", "_token", "_var")

    def __init__(self, var: ContextVar[str], locale: str) -> None:
        self._var = var
        self._locale = locale
        self._token: Token[str] | None = None

    def __enter__(self) -> None:
        self._token = self._var.set(self._locale)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            self._var.reset(self._token)
            self._token = None


def compile_po(po_path: Path) -> io.BytesIO:
    """A `.po` catalog compiled to `.mo` bytes (fuzzy entries are left out, as msgfmt does)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po_path.open("rb") as fp:
        catalog = read_po(fp, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return buffer


i18n = Translator(path=LOCALES_DIR, default_locale=DEFAULT_LOCALE, domain=DOMAIN)
_ = i18n.gettext
__ = i18n.lazy_gettext


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or a plural form for `n`, by the current language's plural rules."""
    return i18n.gettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a string for extraction without translating it (translate later with `_()`)."""
    return message


class LazyText:
    """A message translated when it is turned into a string, not when it is made.

    For texts built outside an update and shown to someone else later, in their language
    (admin alerts from jobs). Parameters that are themselves `LazyText` are rendered too.
    """

    __slots__ = ("msgid", "params")

    def __init__(self, msgid: str, params: Mapping[str, object]) -> None:
        self.msgid = msgid
        self.params = dict(params)

    def __str__(self) -> str:
        values = {k: str(v) if isinstance(v, LazyText) else v for k, v in self.params.items()}
        return i18n.gettext(self.msgid).format(**values)

    def __repr__(self) -> str:
        return f"lazy({self.msgid!r}, {self.params!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyText):
            return (self.msgid, self.params) == (other.msgid, other.params)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.msgid)

    def __contains__(self, item: str) -> bool:
        return item in str(self)


def lazy(msgid: str, /, **params: object) -> LazyText:
    """`msgid` with named placeholders, translated and formatted each time it is shown."""
    return LazyText(msgid, params)


class LazyDate(LazyText):
    """A Unix time shown as `format_date(...) UTC` in the reader's language: a parameter of
    a `lazy` alert, so each admin reads a date, not Unix seconds."""

    __slots__ = ("timestamp",)

    def __init__(self, timestamp: float) -> None:
        super().__init__("", {})
        self.timestamp = timestamp

    def __str__(self) -> str:
        return f"{format_date(self.timestamp)} UTC"

    def __repr__(self) -> str:
        return f"LazyDate({self.timestamp!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyDate):
            return self.timestamp == other.timestamp
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.timestamp)


def lazy_date(timestamp: float) -> LazyDate:
    """A date (and time, UTC) for a `lazy` text, rendered in the language it is shown in."""
    return LazyDate(timestamp)


def user_text(error: BaseException) -> str:
    """An error's user message in the current language.

    `user_message` may be a string translated when the error was raised (inside an update),
    a lazy text, or an English class attribute (extracted by `extract_python`): the last is
    looked up in the catalog now.
    """
    message = getattr(error, "user_message", None)
    if message is None:
        return str(error)
    return i18n.gettext(str(message))


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


def language_name(locale: str) -> str:
    """A language's name in that language (`English`, `Русский`), from CLDR through Babel."""
    try:
        name = Locale.parse(locale).get_display_name(locale) or locale
    except (ValueError, LookupError):
        return locale
    return name[:1].upper() + name[1:]


# -- Countries and dates ---------------------------------------------------------------------

# Shorter everyday names where ISO's are formal ("Российская Федерация", "Соединённые штаты").
_SHORT_NAMES = {
    "ru": {"US": "США", "GB": "Великобритания", "RU": "Россия", "XK": "Косово"},
}


@lru_cache(maxsize=16)
def _iso_translations(locale: str) -> gettext.NullTranslations:
    try:
        return gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[locale])
    except OSError:
        return gettext.NullTranslations()


@lru_cache(maxsize=8192)
def _country_name(code: str, english: str, locale: str) -> str:
    short = _SHORT_NAMES.get(locale, {}).get(code)
    if short is not None:
        return short
    country = pycountry.countries.get(alpha_2=code) if len(code) == 2 else None
    if country is None:
        return english
    translations = _iso_translations(locale)
    for candidate in (english, getattr(country, "common_name", None), country.name):
        if candidate:
            translated = translations.gettext(candidate)
            if translated != candidate:
                return translated
    return english


def country_name(code: str, english: str) -> str:
    """A country's name in the current language (pycountry's ISO 3166 catalogs), else English."""
    locale = i18n.current_locale
    if locale == DEFAULT_LOCALE:
        return english
    return _country_name(code, english, locale)


def format_date(timestamp: float, with_time: bool = True) -> str:
    """A Unix time as a date (and time, UTC) in the current language: `5 Mar 2025, 14:30`."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    pattern = "d MMM y, HH:mm" if with_time else "d MMM y"
    return format_datetime(moment, pattern, tzinfo=UTC, locale=i18n.current_locale)


# -- Tooling: extraction, catalog update, checks ---------------------------------------------


def extract_python(
    fileobj: IO[bytes],
    keywords: Iterable[str],
    comment_tags: Sequence[str],
    options: Mapping[str, Any],
) -> Iterator[tuple[Any, ...]]:
    """Babel's Python extractor, plus every `user_message = "..."` class attribute (the
    English messages of `AppError` subclasses, translated when shown by `user_text`)."""
    from babel.messages.extract import extract_python as babel_extract_python

    source = fileobj.read()
    yield from babel_extract_python(
        io.BytesIO(source),
        keywords,  # type: ignore[arg-type]
        comment_tags,
        options,  # type: ignore[arg-type]
    )
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for statement in node.body:
            if (
                isinstance(statement, ast.Assign)
                and any(
                    isinstance(t, ast.Name) and t.id == "user_message" for t in statement.targets
                )
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
            ):
                yield statement.lineno, "_", statement.value.value, []


def extract_messages(root: Path = SOURCE_ROOT) -> Catalog:
    """Every translatable message in the source, as a template catalog."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir

    template = Catalog(domain=DOMAIN, project="numbot", version="0.1.0", fuzzy=False)
    method = "shop.i18n:extract_python"
    for folder in SOURCE_DIRS:
        found = extract_from_dir(
            root / folder,
            method_map=[("**.py", method)],
            keywords=KEYWORDS,
            comment_tags=("Translators:",),
            strip_comment_tags=True,
        )
        for filename, lineno, message, comments, context in found:
            template.add(
                message,
                None,
                [(f"{folder}/{filename}", lineno)],
                auto_comments=comments,
                context=context,
            )
    return template


def catalogs() -> list[Path]:
    """Every language's `.po` file."""
    return sorted(LOCALES_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def update_catalogs() -> list[str]:
    """Write the template from the code and merge it into every catalog; returns what it did."""
    from babel.messages.pofile import read_po, write_po

    template = extract_messages()
    with TEMPLATE.open("wb") as fp:
        write_po(fp, template, width=99, include_lineno=False, omit_header=False)
    done = [f"{TEMPLATE.relative_to(SOURCE_ROOT)}: {len(template)} messages"]
    for path in catalogs():
        with path.open("rb") as fp:
            catalog = read_po(fp, locale=path.parent.parent.name, domain=DOMAIN)
        catalog.update(template, update_header_comment=False)
        with path.open("wb") as fp:
            write_po(fp, catalog, width=99, include_lineno=False, ignore_obsolete=True)
        missing = len(missing_translations(catalog, template))
        done.append(f"{path.relative_to(SOURCE_ROOT)}: {missing} missing")
    return done


_PLACEHOLDER = re.compile(r"(?<!\{)\{([a-zA-Z_][a-zA-Z0-9_]*)[^{}]*\}")
_TAG = re.compile(r"</?([a-z]+)(?:\s[^<>]*)?>")


def placeholders(text: str) -> set[str]:
    """The names of `{placeholders}` in a message."""
    return set(_PLACEHOLDER.findall(text))


def tags_balanced(text: str) -> bool:
    """Whether the HTML tags in a message open and close in order."""
    stack: list[str] = []
    for match in _TAG.finditer(text):
        name = match.group(1)
        if match.group(0).startswith("</"):
            if not stack or stack.pop() != name:
                return False
        else:
            stack.append(name)
    return not stack


def missing_translations(catalog: Catalog, template: Catalog) -> list[str]:
    """Problems with `catalog` against the code's messages: missing, fuzzy or broken entries."""
    problems: list[str] = []
    for message in template:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple | list) else message.id
        entry = catalog.get(key, message.context)
        ids = message.id if isinstance(message.id, tuple | list) else (message.id,)
        if (
            entry is None
            or not entry.string
            or (isinstance(entry.string, tuple | list) and not all(entry.string))
        ):
            problems.append(f"untranslated: {key!r}")
            continue
        if entry.fuzzy:
            problems.append(f"fuzzy: {key!r}")
            continue
        strings = entry.string if isinstance(entry.string, tuple | list) else (entry.string,)
        expected = set().union(*(placeholders(i) for i in ids))
        for string in strings:
            if placeholders(string) - expected or (
                len(strings) == 1 and placeholders(string) != expected
            ):
                problems.append(f"placeholders differ: {key!r} -> {string!r}")
            if not tags_balanced(string) and tags_balanced(ids[0]):
                problems.append(f"unbalanced HTML: {key!r} -> {string!r}")
    return problems


def check() -> dict[str, list[str]]:
    """Each catalog's problems against the code (an empty list when it is complete)."""
    from babel.messages.pofile import read_po

    template = extract_messages()
    result = {}
    for path in catalogs():
        with path.open("rb") as fp:
            catalog = read_po(fp, domain=DOMAIN)
        result[path.parent.parent.name] = missing_translations(catalog, template)
    return result


def compile_catalogs(directory: Path = LOCALES_DIR) -> list[Path]:
    """Write a `.mo` beside every `.po` under `directory`."""
    written = []
    for po_path in sorted(directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo_path = po_path.with_suffix(".mo")
        mo_path.write_bytes(compile_po(po_path).getvalue())
        written.append(mo_path)
    return written


def main(argv: Sequence[str]) -> int:
    command = argv[0] if argv else ""
    if command == "extract":
        for line in update_catalogs():
            print(line)
        return 0
    if command == "check":
        failed = False
        for locale, problems in check().items():
            print(f"{locale}: {len(problems)} problem(s)")
            for problem in problems:
                print(f"  {problem}")
            failed = failed or bool(problems)
        return 1 if failed else 0
    if command == "compile":
        for path in compile_catalogs():
            print(path.relative_to(SOURCE_ROOT))
        return 0
    print("usage: python -m shop.i18n extract | check | compile", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
