"""Compiles the translation catalogs at install: every `.po` gets its `.mo` in the build.

Everything else about the package is in pyproject.toml. An editable install or a source
checkout needs no `.mo`: `shop.i18n` compiles a catalog in memory when there is none.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithCatalogs(build_py):
    def run(self) -> None:
        super().run()
        locales = Path(self.build_lib) / "shop" / "locales"
        for po_path in sorted(locales.glob("*/LC_MESSAGES/*.po")):
            with po_path.open("rb") as fp:
                catalog = read_po(fp, locale=po_path.parent.parent.name)
            with po_path.with_suffix(".mo").open("wb") as fp:
                write_mo(fp, catalog)


setup(cmdclass={"build_py": BuildWithCatalogs})
