"""The shape of the tree, read from the source: imports run one way (bot -> handlers, web,
storage -> shop), handlers talk Telegram and the domain only, and no module reaches into a
library's private parts or replaces a library function."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers", "shop", "storage", "web")

# What may import what (the first dotted part of an import of ours). `shop` is the domain.
ALLOWED = {
    "bot": {"bot", "handlers", "shop", "storage", "web"},
    "handlers": {"handlers", "shop"},
    "web": {"web", "shop"},
    "storage": {"storage", "shop"},
    "shop": {"shop"},
}
# Library internals: pydantic's private storage and hooks, a function's code object, the
# private `_bot` attribute aiogram keeps on its objects (read as `obj._bot` or by its name).
PRIVATE = re.compile(r"\._bot\b|[\"']_bot[\"']|__pydantic|model_post_init|__code__")


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imports(path: Path) -> list[str]:
    """Every module `path` imports, absolute (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level]
                found.append(".".join([*base, node.module or ""]).rstrip("."))
            elif node.module:
                found.append(node.module)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down_only(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sources(package)
        for name in imports(path)
        if name.split(".")[0] in PACKAGES and name.split(".")[0] not in ALLOWED[package]
    ]
    assert wrong == []


def test_the_domain_knows_no_telegram_sql_or_web_server() -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sources("shop")
        for name in imports(path)
        if name.split(".")[0] in {"aiogram", "aiosqlite", "sqlite3", "sqlalchemy", "aiohttp"}
    ]
    assert wrong == []


def test_handlers_never_hold_an_upstream_client() -> None:
    """Handlers get a route's plain description (`shop.models.RouteInfo`), services raise
    `AppError`s: nothing under handlers/ imports the upstream clients or their errors."""
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sources("handlers")
        for name in imports(path)
        if name.startswith("shop.providers")
    ]
    assert wrong == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_touches_library_internals(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources(package)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert wrong == []
