"""The translation layer: every message in the code has a usable Russian translation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from handlers.menu.screens import help_text
from handlers.sms.screens import PHONE_REASONS
from shop import phones
from shop.i18n import (
    DOMAIN,
    Translator,
    _,
    catalogs,
    country_name,
    extract_messages,
    format_date,
    i18n,
    language_name,
    lazy,
    lazy_date,
    locale_of,
    missing_translations,
    ngettext,
    placeholders,
    tags_balanced,
    user_text,
)
from shop.models import User
from shop.providers.base import NoNumbers


def test_every_message_is_translated_in_every_catalog() -> None:
    """The "no untranslated keys" guard. A failure lists what a catalog lacks: run
    `python -m shop.i18n extract`, translate the empty entries, and run this again."""
    template = extract_messages()
    assert len(template) > 100  # the extractor found the code's messages
    assert catalogs(), "no catalogs"
    for path in catalogs():
        with path.open("rb") as fp:
            catalog = read_po(fp, domain=DOMAIN)
        problems = missing_translations(catalog, template)
        assert not problems, f"{path.parent.parent.name}:\n" + "\n".join(problems)


def test_extractor_finds_calls_plurals_lazies_and_error_messages() -> None:
    ids = {m.id if isinstance(m.id, str) else tuple(m.id) for m in extract_messages()}
    assert "👋 Hi, {name}!" in ids  # _()
    assert "⏳ Waiting for the SMS" in ids  # __() at module level
    assert ("{count} recipient", "{count} recipients") in ids  # ngettext
    assert "Order #{order_id} does not exist." in ids  # inside a service
    assert NoNumbers.user_message in ids  # a class attribute of an AppError subclass
    assert "Main menu" in ids  # N_() in the command list


def test_phone_reasons_are_marked_for_translation() -> None:
    reasons = {
        phones.NEED_COUNTRY_CODE,
        phones.NOT_A_NUMBER,
        phones.INVALID,
        phones.NO_COUNTRY,
        phones.SEVERAL,
    }
    assert set(PHONE_REASONS) == reasons


def test_placeholder_and_tag_checks() -> None:
    assert placeholders("{a} and {b:>3} but not {{c}}") == {"a", "b"}
    assert tags_balanced("<b>x</b> <code>y</code>")
    assert not tags_balanced("<b>x</code>")
    assert not tags_balanced("<b>x")


def test_locale_of_prefers_the_choice_then_telegram_then_english() -> None:
    def user(language: str | None, locale: str | None = None) -> User:
        return User(1, None, "A", language, 0, True, 0, locale=locale)

    assert locale_of(None) == "en"
    assert locale_of(user("ru")) == "ru"
    assert locale_of(user("ru-RU")) == "ru"
    assert locale_of(user("de")) == "en"
    assert locale_of(user("ru", locale="en")) == "en"
    assert locale_of(user("en", locale="ru")) == "ru"


def test_translation_plural_lazy_and_errors_follow_the_current_locale() -> None:
    alert = lazy("Order #{order_id} does not exist.", order_id=7)
    with i18n.use_locale("ru"):
        assert _("Main menu") == "Главное меню"
        assert [
            ngettext("{count} segment", "{count} segments", n).format(count=n)
            for n in (1, 3, 5, 21)
        ] == [
            "1 сегмент",
            "3 сегмента",
            "5 сегментов",
            "21 сегмент",
        ]
        assert str(alert) == "Заказа №7 не существует."
        assert (
            user_text(NoNumbers())
            == "Сейчас нет номеров для этого выбора. Попробуйте другой маршрут или страну."
        )
        assert country_name("DE", "Germany") == "Германия"
        assert country_name("US", "United States") == "США"
        assert country_name("x-atlantis", "Atlantis") == "Atlantis"
        assert "2025" in format_date(1_741_180_000) and "мар" in format_date(1_741_180_000)
    assert str(alert) == "Order #7 does not exist."
    assert user_text(NoNumbers()) == NoNumbers.user_message
    assert country_name("DE", "Germany") == "Germany"
    assert format_date(1_741_180_000) == "5 Mar 2025, 13:06"
    assert language_name("ru") == "Русский" and language_name("en") == "English"


def test_catalog_without_mo_is_compiled_in_memory(tmp_path: Path) -> None:
    """A source checkout has only `.po` files; an installed package has fresh `.mo` files."""
    source = Path(i18n.path) / "ru" / "LC_MESSAGES" / "messages.po"
    target = tmp_path / "ru" / "LC_MESSAGES"
    target.mkdir(parents=True)
    shutil.copy(source, target / "messages.po")
    translator = Translator(path=tmp_path, default_locale="en", domain=DOMAIN)
    assert translator.available_locales == ("en", "ru")
    assert translator.gettext("Main menu", locale="ru") == "Главное меню"


@pytest.mark.parametrize("locale", ["en", "ru"])
def test_help_renders_in_each_language(locale: str) -> None:
    with i18n.use_locale(locale):
        text = help_text(sms_enabled=True)
    assert "/language" in text and tags_balanced(text)


def test_lazy_date_is_a_utc_date_in_the_readers_language() -> None:
    """Alerts built by jobs carry a time that each admin reads as a date, not Unix seconds."""
    alert = lazy(
        "Rental #{rental_id} bought at {time}.", rental_id=3, time=lazy_date(1_741_180_000)
    )
    assert str(alert) == "Rental #3 bought at 5 Mar 2025, 13:06 UTC."
    with i18n.use_locale("ru"):
        assert "мар" in str(lazy_date(1_741_180_000))
        assert str(lazy_date(1_741_180_000)).endswith("UTC")
