"""What `python -m bot` does not import until it is used: the SMS recipients' number plans
(phonenumbers, ~1 MB), Babel's catalog tools (only with a catalog not compiled to .mo), the
PostgreSQL driver on SQLite, and Alembic (imported by a start only when there is something to
migrate: see test_migrate_check.py)."""

from __future__ import annotations

import json
import subprocess
import sys

LAZY = ("phonenumbers", "alembic", "asyncpg")


def _imported(code: str) -> list[str]:
    probe = (
        f"import json, sys; {code};"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(LAZY)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return list(json.loads(out.stdout))


def test_the_app_imports_none_of_them() -> None:
    assert _imported("import bot.app, bot.__main__") == []


def test_a_typed_recipient_list_imports_phonenumbers_when_it_is_parsed() -> None:
    code = (
        "import bot.__main__; from shop.phones import parse_recipients;"
        "assert parse_recipients('+37256789045').valid"
    )
    assert _imported(code) == ["phonenumbers"]
