"""Catalog search (shop.search): index build time and query latency on a synthetic catalog.

The catalog is the tests' (tests/fakes/catalog.py) padded to the requested size: made-up
service names, then ISO countries it lacks. Measured:

* build: the first build in the process (reads pycountry's Russian catalog, fills the caches of
  per-country names), then the median of rebuilds, as after every catalog change;
* services(query) and countries(query) over a mix of exact names, aliases, codes, Russian,
  prefixes, typos and no match, each query timed alone;
* one_line(text) over typed lines such as "whatsapp us" or "ватсап сша" (up to ~10 queries
  each: every split, both ways round), held to the same aim as one query.

Run: ``python -m bench.search [--services 200 --countries 150 --rounds 200]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial

import pycountry

from bench._common import line, percentile
from shop.search import SearchIndex
from tests.fakes.catalog import COUNTRIES, SERVICES

BUILD_TARGET_MS = 50.0
QUERY_TARGET_MS = 1.0

SERVICE_QUERIES = (
    "whatsapp", "WhatsApp", "wa", "ватсап", "whats", "whatsap", "telegarm", "tg", "google",
    "гугл", "instagarm", "insta", "tiktk", "pay", "yandex go", "uber eats", "mail.ru", "x", "z",
    "chatgpt", "qwertyuiop",
)
COUNTRY_QUERIES = (
    "сша", "США", "us", "usa", "United States", "Britain", "uk", "germany", "германия",
    "germny", "united", "korea", "казакстан", "u", "côte d'ivoire", "Russian Federation",
    "рф", "qwertyuiop",
)
LINES = (
    "whatsapp us", "telegram uk", "wa usa", "google germany", "ватсап сша", "whatsap usa",
    "united states whatsapp", "whatsapp united kingdom", "pay usa", "yandex go kazakhstan",
    "whatsapp", "сша", "qwertyuiop zzz",
)


def catalog(services: int, countries: int) -> tuple[list[tuple[int, str]], list[tuple[str, str]]]:
    """The tests' catalog padded (or cut) to `services` x `countries` entries."""
    service_rows = list(SERVICES[:services])
    service_rows += [(10_000 + n, f"Service {n:03d}") for n in range(services - len(service_rows))]
    country_rows = list(COUNTRIES[:countries])
    known = {code for code, _ in country_rows}
    for country in pycountry.countries:
        if len(country_rows) >= countries:
            break
        if country.alpha_2 not in known:
            name = getattr(country, "common_name", None) or country.name
            country_rows.append((country.alpha_2, name))
    return service_rows, country_rows


def timed_ms(call: Callable[[], object], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def timed_each(call: Callable[[str], object], texts: Sequence[str], rounds: int) -> list[float]:
    return [ms for text in texts for ms in timed_ms(partial(call, text), rounds)]


def report(name: str, samples: list[float], target_ms: float) -> None:
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    print(line(f"{name} p50", f"{p50:.3f} ms"))
    print(line(f"{name} p99", f"{p99:.3f} ms", f"< {target_ms:g} ms", p99 < target_ms))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--countries", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=200, help="timings per query and line")
    args = parser.parse_args()
    services, countries = catalog(args.services, args.countries)
    print(f"search: {len(services)} services x {len(countries)} countries")

    start = time.perf_counter()
    index = SearchIndex(services, countries)
    first_ms = (time.perf_counter() - start) * 1000
    rebuilds = timed_ms(lambda: SearchIndex(services, countries), 20)
    print(line("first build (cold caches)", f"{first_ms:.1f} ms"))
    print(line("rebuild median", f"{statistics.median(rebuilds):.1f} ms",
               f"< {BUILD_TARGET_MS:g} ms", statistics.median(rebuilds) < BUILD_TARGET_MS))

    service_times = timed_each(index.services, SERVICE_QUERIES, args.rounds)
    country_times = timed_each(partial(index.countries, locale="ru"), COUNTRY_QUERIES, args.rounds)
    line_times = timed_each(partial(index.one_line, locale="ru"), LINES, args.rounds)
    report("services(query)", service_times, QUERY_TARGET_MS)
    report("countries(query)", country_times, QUERY_TARGET_MS)
    report("one_line(text)", line_times, QUERY_TARGET_MS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
