"""Parser and resolver for v2fly domain-list-community data (pure: text in, values out).

A data directory holds one list per file, the list's name being the file name
(``cn``, ``geolocation-!cn``, ``baidu``...). Each line of a list is, after
removing the comment (``#`` to end of line) and surrounding whitespace, either

* blank, or
* ``include:NAME [@attr | @-attr]...``: all entries of list NAME (as resolved,
  so nested includes count), keeping only those that have every ``@attr`` and
  none of the ``@-attr`` (the attributes on an include are filters), or
* ``[TYPE:]VALUE [@attr]... [&list]...``: one entry. TYPE is ``domain``
  (the default: VALUE and all its subdomains), ``full`` (VALUE only),
  ``keyword`` or ``regexp``. ``@attr`` attributes stay attached to the entry;
  ``&list`` (an affiliation) also adds the entry to list ``list``, which need
  not have a file of its own.

``parse_list(name, lines)`` turns one file into a ``DataList`` or raises
``ConfigError("name:lineno: why: 'line'")``. ``resolve(lists, name)`` expands
includes recursively, applies filters and affiliations, and returns the
entries of one list; an include of a missing list or an include cycle is a
one-line ``ConfigError``. Entries keep their origin (``list:lineno``) so the
merger can say where a bad value came from.

Each list's resolved entries hold every entry (one source line) at most once:
an include repeated with the same filter is expanded once, and an entry that
arrives again by another path (a second filter, a diamond of includes) is
kept at its first position. Without that, 40 crafted lines (a chain of lists
that each include the next twice) expanded to 2^18 entries.
"""
from typing import Dict, FrozenSet, Iterable, List, Mapping, NamedTuple, Tuple

from ..errors import ConfigError

ENTRY_TYPES = ("domain", "full", "keyword", "regexp")
DEFAULT_TYPE = "domain"
# Upstream nests about 5 deep; the limit turns a pathological chain into an
# error instead of Python's RecursionError.
MAX_INCLUDE_DEPTH = 100


class Entry(NamedTuple):
    type: str                       # one of ENTRY_TYPES
    value: str                      # as written (domain values are normalised by the merger)
    attrs: FrozenSet[str]           # attribute names without "@": {"ads"}, {"cn"}, {"!cn"}
    affiliations: Tuple[str, ...]   # list names from "&name"
    origin: str                     # "list:lineno", for messages


class Include(NamedTuple):
    name: str
    must_have: FrozenSet[str]       # "@a": keep entries that have a
    must_not: FrozenSet[str]        # "@-a": drop entries that have a
    origin: str

    def admits(self, entry: Entry) -> bool:
        return self.must_have <= entry.attrs and not (self.must_not & entry.attrs)


class DataList(NamedTuple):
    name: str
    entries: Tuple[Entry, ...]
    includes: Tuple[Include, ...]


def _parse_line(text: str, origin: str):
    """One comment-free, stripped, non-empty line -> Entry or Include; ValueError(why)."""
    head, *tail = text.split()
    kind, colon, value = head.partition(":")
    if not colon:
        kind, value = DEFAULT_TYPE, head
    elif kind not in ENTRY_TYPES and kind != "include":
        raise ValueError("unknown rule type %r (expected %s or include)" % (kind, ", ".join(ENTRY_TYPES)))
    if not value:
        raise ValueError("empty value after %r" % (kind + ":"))
    attrs, negated, affiliations = set(), set(), []
    for token in tail:
        if token.startswith("@-") and len(token) > 2:
            negated.add(token[2:])
        elif token.startswith("@") and len(token) > 1:
            attrs.add(token[1:])
        elif token.startswith("&") and len(token) > 1:
            affiliations.append(token[1:])
        else:
            raise ValueError("unexpected %r (expected @attribute or &list after the rule)" % token)
    if kind == "include":
        if affiliations:
            raise ValueError("an include cannot carry &affiliations")
        return Include(value, frozenset(attrs), frozenset(negated), origin)
    if negated:
        raise ValueError("@-attribute is a filter; it belongs on include: lines only")
    return Entry(kind, value, frozenset(attrs), tuple(affiliations), origin)


def parse_list(name: str, lines: Iterable[str]) -> DataList:
    """One data file -> DataList. Raises ConfigError naming name:lineno and the line."""
    entries: List[Entry] = []
    includes: List[Include] = []
    for lineno, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        origin = "%s:%d" % (name, lineno)
        try:
            item = _parse_line(text, origin)
        except ValueError as e:
            raise ConfigError("%s: %s: %r" % (origin, e, line.rstrip("\r\n"))) from None
        (includes if type(item) is Include else entries).append(item)
    return DataList(name, tuple(entries), tuple(includes))


def parse_lists(files: Mapping[str, Iterable[str]]) -> Dict[str, DataList]:
    """{list name: lines} -> {list name: DataList}, affiliations applied.

    An entry "x &other" is added to list "other" too, creating that list if
    it has no file of its own.
    """
    lists = {name: parse_list(name, lines) for name, lines in files.items()}
    affiliated: Dict[str, List[Entry]] = {}
    for data_list in lists.values():
        for entry in data_list.entries:
            for target in entry.affiliations:
                affiliated.setdefault(target, []).append(entry)
    for target in sorted(affiliated):
        extra = tuple(affiliated[target])
        old = lists.get(target)
        if old is None:
            lists[target] = DataList(target, extra, ())
        else:
            lists[target] = old._replace(entries=old.entries + extra)
    return lists


class _Resolver:
    """Memoised depth-first include expansion with cycle detection."""

    def __init__(self, lists: Mapping[str, DataList]):
        self.lists = lists
        self.done: Dict[str, Tuple[Entry, ...]] = {}
        self.stack: List[str] = []

    def resolve(self, name: str, origin: str) -> Tuple[Entry, ...]:
        cached = self.done.get(name)
        if cached is not None:
            return cached
        if name in self.stack:
            cycle = self.stack[self.stack.index(name):] + [name]
            raise ConfigError("%s: include cycle: %s" % (origin, " -> ".join(cycle)))
        data_list = self.lists.get(name)
        if data_list is None:
            raise ConfigError("%s: no such list %r" % (origin, name))
        if len(self.stack) >= MAX_INCLUDE_DEPTH:
            raise ConfigError("%s: includes nested deeper than %d: %s ..." % (
                origin, MAX_INCLUDE_DEPTH, " -> ".join(self.stack[:5])))
        self.stack.append(name)
        entries = dict.fromkeys(data_list.entries)      # an ordered set
        expanded = set()
        for include in data_list.includes:
            key = (include.name, include.must_have, include.must_not)
            if key in expanded:
                continue
            expanded.add(key)
            included = self.resolve(include.name, "%s: include:%s" % (include.origin, include.name))
            if include.must_have or include.must_not:
                entries.update(dict.fromkeys(e for e in included if include.admits(e)))
            else:
                entries.update(dict.fromkeys(included))
        self.stack.pop()
        result = tuple(entries)
        self.done[name] = result
        return result


def resolve_many(lists: Mapping[str, DataList], names: Iterable[str]) -> Dict[str, Tuple[Entry, ...]]:
    """Resolve several lists sharing one memo (the big lists include the same company lists)."""
    resolver = _Resolver(lists)
    return {name: resolver.resolve(name, "list %r" % name) for name in names}


def resolve(lists: Mapping[str, DataList], name: str) -> Tuple[Entry, ...]:
    """All entries of list `name` with includes expanded and filtered, in file order."""
    return resolve_many(lists, [name])[name]
