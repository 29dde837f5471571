"""Find services and countries in the catalog from what a customer types (issue 16).

A `SearchIndex` is built once per catalog from its services `(id, name)` and countries
`(code, English name)`. It answers which services a query means, which countries, and which
(service, country) pair a whole typed line such as "whatsapp usa" means. Matching ignores case,
accents, `ё` and punctuation, forgives typos (rapidfuzz) and unfinished words, and knows the
aliases in `shop.aliases` and the country names of pycountry's ISO 3166 catalogs.

Scores run from 0 to 100:
    100      exact: a name, an alias or a code (codes and keys of 1-2 letters match only so)
    85..100  the query begins a name or alias (the more of it typed, the higher)
    75..90   the query (3+ letters) begins a later word of a name: "kingdom"
    72..90   a typo: rapidfuzz's similarity x 0.9, at least 80 (85 for 3-4 letters)
Parts of a service name such as "Instagram+Threads" score x 0.95, official country names
("Kingdom of Spain") x 0.9. Queries of 1-2 letters are never matched fuzzily.
"""

from __future__ import annotations

import enum
import gettext
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import pycountry
from rapidfuzz import fuzz, process

from shop.aliases import COUNTRY_ALIASES, SERVICE_NAMES

EXACT = 100.0
CONFIDENT = 75.0  # the least score `pick` opens without asking...
MARGIN = 5.0  # ...when the runner-up is at least this much lower

_PREFIX_BASE = 85.0
_WORD_BASE = 75.0
_PREFIX_SPAN = 15.0
_FUZZY_WEIGHT = 0.9
_FUZZY_CUTOFF = 80.0
_SHORT_FUZZY_CUTOFF = 85.0  # for queries of 3-4 letters, where one wrong letter is a lot
_FUZZY_LIMIT = 20
_PART_WEIGHT = 0.95
_OFFICIAL_WEIGHT = 0.9
_SHORT_KEY = 2  # keys this short (codes, "wa", "vk") match only exactly

_MAX_WORDS = 8
_HALF_LIMIT = 5  # matches of each half of a line that are paired up
_PAIR_LIMIT = 5  # candidate pairs shown for an ambiguous line
_CONNECTORS = frozenset({"in", "for", "from", "в", "во", "для", "из"})

_APOSTROPHES = re.compile(r"['’ʼ`´]")
_SEPARATORS = re.compile(r"[\W_]+")
_NAME_PARTS = re.compile(r"[,/+|()]")
_CYRILLIC = re.compile(r"[а-я]")


def normalize(text: str) -> str:
    """Lower case without accents (`ё` -> `е`) or punctuation, words split by one space."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(_SEPARATORS.sub(" ", _APOSTROPHES.sub("", bare)).split())


@dataclass(frozen=True, slots=True)
class ServiceMatch:
    """A catalog service a query matched: its id and catalog name, the score (0-100) and the
    normalised name or alias that matched."""

    id: int
    name: str
    score: float
    matched: str


@dataclass(frozen=True, slots=True)
class CountryMatch:
    """A catalog country a query matched: its code and catalog (English) name, the score (0-100)
    and the normalised name, alias or code that matched."""

    code: str
    name: str
    score: float
    matched: str


@dataclass(frozen=True, slots=True)
class PairMatch:
    """A (service, country) reading of a typed line, as good as its weaker half."""

    service: ServiceMatch
    country: CountryMatch
    score: float


class LineKind(enum.Enum):
    NOTHING = "nothing"
    PAIR = "pair"  # one confident pair: `pairs[0]`
    PAIRS = "pairs"  # ambiguous: the few best pairs, best first
    SERVICE = "service"  # the line names only a service: `services`, ranked
    COUNTRY = "country"  # the line names only a country: `countries`, ranked


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """What a typed line means; the field named by `kind` is filled, the others are empty."""

    kind: LineKind
    pairs: tuple[PairMatch, ...] = ()
    services: tuple[ServiceMatch, ...] = ()
    countries: tuple[CountryMatch, ...] = ()


M = TypeVar("M", ServiceMatch, CountryMatch)


def pick(matches: Sequence[M]) -> M | None:
    """The match to open without asking, if any: the top of a ranked list (pass the list as the
    search returned it, runner-up included) when it is the only exact match, or scores at least
    `CONFIDENT` and `MARGIN` more than the runner-up."""
    if not matches:
        return None
    top = matches[0]
    runner_up = matches[1].score if len(matches) > 1 else 0.0
    if top.score >= EXACT:
        return top if runner_up < EXACT else None
    return top if top.score >= CONFIDENT and top.score - runner_up >= MARGIN else None


@dataclass(frozen=True, slots=True)
class _Key:
    """One normalised text that finds a target (a service or country, by position)."""

    text: str
    target: int
    lang: str = ""  # the language of a name ("en", "ru"); "" for codes and service names
    exact_only: bool = False
    weight: float = 1.0


class _Matcher:
    """Scores the targets whose keys match a normalised query (see the module docstring)."""

    def __init__(self, keys: Iterable[_Key]) -> None:
        self._exact: dict[str, list[_Key]] = {}
        self._keys: list[_Key] = []  # the keys matched by prefix and fuzzily
        starts: list[tuple[str, int, bool]] = []  # (text from a word start, key, at the start)
        for key in keys:
            self._exact.setdefault(key.text, []).append(key)
            if key.exact_only:
                continue
            position = len(self._keys)
            self._keys.append(key)
            starts.append((key.text, position, True))
            for word in re.finditer(" ", key.text):
                starts.append((key.text[word.end() :], position, False))
        starts.sort()
        self._starts = starts
        self._texts = [key.text for key in self._keys]

    def search(self, query: str) -> dict[int, tuple[float, _Key]]:
        """The best (score, key) of each target the query matches."""
        best: dict[int, tuple[float, _Key]] = {}

        def offer(key: _Key, score: float) -> None:
            score *= key.weight
            if key.target not in best or score > best[key.target][0]:
                best[key.target] = (score, key)

        for key in self._exact.get(query, ()):
            offer(key, EXACT)
        position = bisect_left(self._starts, (query,))
        while position < len(self._starts) and self._starts[position][0].startswith(query):
            _, index, at_start = self._starts[position]
            key = self._keys[index]
            typed = _PREFIX_SPAN * len(query) / len(key.text)
            if at_start:
                offer(key, _PREFIX_BASE + typed)
            elif len(query) >= 3:
                offer(key, _WORD_BASE + typed)
            position += 1
        if len(query) >= 3:
            cutoff = _SHORT_FUZZY_CUTOFF if len(query) <= 4 else _FUZZY_CUTOFF
            for _, similarity, index in process.extract(
                query, self._texts, scorer=fuzz.ratio, processor=None,
                score_cutoff=cutoff, limit=_FUZZY_LIMIT,
            ):
                offer(self._keys[index], similarity * _FUZZY_WEIGHT)
        return best

    def ranked(
        self, query: str, names: Sequence[str], locale: str, limit: int
    ) -> list[tuple[int, float, _Key]]:
        """(target, score, key) best first; among equal scores, names in `locale` first."""
        if not query:
            return []
        hits = self.search(query)

        def order(target: int) -> tuple[float, bool, str, int]:
            score, key = hits[target]
            return (-round(score, 2), key.lang not in ("", locale), names[target], target)

        return [(target, round(hits[target][0], 2), hits[target][1])
                for target in sorted(hits, key=order)[:limit]]


class SearchIndex:
    """The catalog made searchable. Cheap to build (rebuild it when the catalog changes);
    immutable afterwards, so one instance may serve any number of concurrent searches."""

    def __init__(
        self,
        services: Iterable[tuple[int, str]],
        countries: Iterable[tuple[str, str]],
        *,
        languages: Sequence[str] = ("ru",),
    ) -> None:
        """`services` are (id, name) and `countries` (ISO alpha-2 or `x-...` code, English name)
        pairs, as the catalog stores them; `languages` are the pycountry catalogs whose country
        names are searched besides English."""
        self._services = tuple((int(service_id), name) for service_id, name in services)
        self._countries = tuple((code, name) for code, name in countries)
        self._service_names = [name for _, name in self._services]
        self._country_names = [name for _, name in self._countries]
        self._service_matcher = _Matcher(_service_keys(self._service_names))
        self._country_matcher = _Matcher(_country_keys(self._countries, tuple(languages)))

    def services(self, query: str, limit: int = 8) -> tuple[ServiceMatch, ...]:
        """The services `query` may mean, best first (`pick` says whether to open the first)."""
        found = self._service_matcher.ranked(normalize(query), self._service_names, "", limit)
        return tuple(ServiceMatch(self._services[target][0], self._services[target][1], score,
                                  key.text) for target, score, key in found)

    def countries(
        self, query: str, locale: str = "en", limit: int = 8
    ) -> tuple[CountryMatch, ...]:
        """The countries `query` may mean, best first, whatever the language it is typed in;
        `locale` only orders matches of equal score (its own names first)."""
        found = self._country_matcher.ranked(normalize(query), self._country_names, locale, limit)
        return tuple(CountryMatch(self._countries[target][0], self._countries[target][1], score,
                                  key.text) for target, score, key in found)

    def one_line(self, text: str, locale: str = "en") -> ParsedLine:
        """What a line such as "whatsapp usa", "сша ватсап" or "telegram united kingdom" means.

        The whole line exactly naming one service or country wins ("Mail.ru" is not Mail on
        RU). Otherwise every split into two halves is read both ways round as (service, country);
        a pair whose halves are each `pick`ed, clear of any other such pair and beaten by no
        other reading, is the answer.
        Else the best pairs, or failing those what the whole line matches as a service or a
        country, or nothing.
        """
        words = normalize(text).split()
        if not words or len(words) > _MAX_WORDS:
            return ParsedLine(LineKind.NOTHING)
        line = " ".join(words)
        services, countries = self.services(line), self.countries(line, locale)
        if services and services[0].score >= EXACT and pick(services):
            return ParsedLine(LineKind.SERVICE, services=services)
        if countries and countries[0].score >= EXACT and pick(countries):
            return ParsedLine(LineKind.COUNTRY, countries=countries)

        sure, candidates = self._pairs(words, locale)
        if sure and sure[0].score >= candidates[0].score and (
            len(sure) == 1 or sure[0].score - sure[1].score >= MARGIN
        ):
            return ParsedLine(LineKind.PAIR, pairs=(sure[0],))
        single = max(_picked_score(services), _picked_score(countries))
        if candidates and single < candidates[0].score:
            return ParsedLine(LineKind.PAIRS, pairs=tuple(candidates[:_PAIR_LIMIT]))
        if services and (not countries or services[0].score >= countries[0].score):
            return ParsedLine(LineKind.SERVICE, services=services)
        if countries:
            return ParsedLine(LineKind.COUNTRY, countries=countries)
        return ParsedLine(LineKind.NOTHING)

    def _pairs(self, words: list[str], locale: str) -> tuple[list[PairMatch], list[PairMatch]]:
        """(sure pairs, all candidate pairs) over every split of the line, best first."""
        services: dict[str, tuple[ServiceMatch, ...]] = {}
        countries: dict[str, tuple[CountryMatch, ...]] = {}
        sure: dict[tuple[int, str], PairMatch] = {}
        candidates: dict[tuple[int, str], PairMatch] = {}
        for cut in range(1, len(words)):
            left, right = _halves(words, cut)
            for service_text, country_text in ((left, right), (right, left)):
                if service_text not in services:
                    services[service_text] = _whole(
                        service_text, self.services(service_text, _HALF_LIMIT)
                    )
                if country_text not in countries:
                    countries[country_text] = _whole(
                        country_text, self.countries(country_text, locale, _HALF_LIMIT)
                    )
                found_services, found_countries = services[service_text], countries[country_text]
                for service in found_services:
                    for country in found_countries:
                        _keep_best(candidates, _pair(service, country))
                picked_service, picked_country = pick(found_services), pick(found_countries)
                if picked_service is not None and picked_country is not None:
                    _keep_best(sure, _pair(picked_service, picked_country))
        return _best_first(sure), _best_first(candidates)


def _whole(half: str, matches: tuple[M, ...]) -> tuple[M, ...]:
    """A half of one letter stands for a whole name or code only: the "t" of "AT&T" is not
    the start of "The States"."""
    if len(half) > 1:
        return matches
    return tuple(match for match in matches if match.score >= EXACT)


def _picked_score(matches: Sequence[M]) -> float:
    match = pick(matches)
    return 0.0 if match is None else match.score


def _halves(words: list[str], cut: int) -> tuple[str, str]:
    """The line's words before and after `cut`, without a connector at the cut ("wa in usa")."""
    left, right = words[:cut], words[cut:]
    if len(left) > 1 and left[-1] in _CONNECTORS:
        left = left[:-1]
    if len(right) > 1 and right[0] in _CONNECTORS:
        right = right[1:]
    return " ".join(left), " ".join(right)


def _pair(service: ServiceMatch, country: CountryMatch) -> PairMatch:
    return PairMatch(service, country, min(service.score, country.score))


def _keep_best(pairs: dict[tuple[int, str], PairMatch], pair: PairMatch) -> None:
    key = (pair.service.id, pair.country.code)
    if key not in pairs or pair.score > pairs[key].score:
        pairs[key] = pair


def _best_first(pairs: dict[tuple[int, str], PairMatch]) -> list[PairMatch]:
    return sorted(pairs.values(), key=lambda pair: (
        -pair.score, -(pair.service.score + pair.country.score),
        pair.service.name, pair.country.name,
    ))


def _service_keys(names: Sequence[str]) -> list[_Key]:
    """Each service's name, the parts of a name like "Google,YouTube,Gmail", and the aliases
    of `SERVICE_NAMES` groups that name it (by whole name, or else by a part)."""
    keys: list[_Key] = []
    by_name: dict[str, set[int]] = {}
    by_part: dict[str, set[int]] = {}
    for target, name in enumerate(names):
        text = normalize(name)
        keys.append(_key(text, target))
        by_name.setdefault(text, set()).add(target)
        parts = [part for part in map(normalize, _NAME_PARTS.split(name)) if part]
        for part in parts if len(parts) > 1 else ():
            keys.append(_key(part, target, weight=_PART_WEIGHT))
            by_part.setdefault(part, set()).add(target)
    taken = _claimed(keys)
    for group in _service_groups():
        for target in sorted(_owners(group, by_name, by_part)):
            keys += [_key(word, target) for word in group
                     if taken.get(word, {target}) == {target}]
    return _unique(keys)


def _owners(group: tuple[str, ...], by_name: dict[str, set[int]],
            by_part: dict[str, set[int]]) -> set[int]:
    """The services a group of names means: by whole name before a part of a name, and by the
    group's first (canonical) name before its others ("gmail" is Google's only without Gmail)."""
    for index in (by_name, by_part):
        for words in (group[:1], group):
            owners: set[int] = set().union(*(index.get(word, ()) for word in words))
            if owners:
                return owners
    return set()


def _country_keys(countries: Sequence[tuple[str, str]], languages: tuple[str, ...]) -> list[_Key]:
    """Each country's catalog name; for an ISO code also the code, alpha-3, pycountry's names
    in English and `languages`, and the aliases of `COUNTRY_ALIASES`."""
    keys: list[_Key] = []
    for target, (code, name) in enumerate(countries):
        keys.append(_key(normalize(name), target, "en"))
        if not code.startswith("x-"):
            keys += [_key(text, target, lang, weight, is_code)
                     for text, lang, weight, is_code in _iso_keys(code.upper(), languages)]
    taken = _claimed(keys)
    for target, (code, _) in enumerate(countries):
        keys += [_key(alias, target, lang) for alias, lang in _country_aliases().get(code, ())
                 if taken.get(alias, {target}) == {target}]
    return _unique(keys)


def _key(text: str, target: int, lang: str = "", weight: float = 1.0, code: bool = False) -> _Key:
    return _Key(text, target, lang, code or len(text) <= _SHORT_KEY, weight)


def _claimed(keys: Iterable[_Key]) -> dict[str, set[int]]:
    """The targets each key text already finds: an alias may only add to its own target's."""
    claimed: dict[str, set[int]] = {}
    for key in keys:
        claimed.setdefault(key.text, set()).add(key.target)
    return claimed


def _unique(keys: list[_Key]) -> list[_Key]:
    """The first key of each (text, target): names before aliases."""
    return list({(key.text, key.target): key for key in reversed(keys)}.values())[::-1]


@lru_cache(maxsize=4096)
def _iso_keys(code: str, languages: tuple[str, ...]) -> tuple[tuple[str, str, float, bool], ...]:
    """(text, language, weight, is a code) for an ISO alpha-2 code, from pycountry; cached, as
    the index is rebuilt with every catalog change. Official names ("Kingdom of Spain") weigh
    less, so that they do not crowd out the names people use."""
    found = [(code.lower(), "", 1.0, True)]
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return tuple(found)
    found.append((country.alpha_3.lower(), "", 1.0, True))
    names = [(getattr(country, field, None), weight) for field, weight in
             (("name", 1.0), ("common_name", 1.0), ("official_name", _OFFICIAL_WEIGHT))]
    found += [(normalize(name), "en", weight, False) for name, weight in names if name]
    for language in languages:
        translate = _iso_translations(language).gettext
        found += [(normalize(translate(name)), language, weight, False)
                  for name, weight in names if name and translate(name) != name]
    return tuple(found)


@lru_cache(maxsize=8)
def _iso_translations(language: str) -> gettext.NullTranslations:
    try:
        return gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language])
    except OSError:
        return gettext.NullTranslations()


@lru_cache(maxsize=1)
def _service_groups() -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(dict.fromkeys(map(normalize, group))) for group in SERVICE_NAMES)


@lru_cache(maxsize=1)
def _country_aliases() -> dict[str, tuple[tuple[str, str], ...]]:
    return {code: tuple((normalize(alias), "ru" if _CYRILLIC.search(alias.lower()) else "en")
                        for alias in aliases) for code, aliases in COUNTRY_ALIASES.items()}
