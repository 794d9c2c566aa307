"""Rules for the proxy: parse rule files, answer "what do we do with this host?".

Contract
--------
A rule file is UTF-8 text, one rule per line: ``direction<TAB>target``.

* direction is ``block``, ``direct`` or ``forward`` (lower case, as the seed).
* target is one of
    ``domain``          suffix rule: the name and every name below it
                        (``baidu.com`` matches ``www.baidu.com``, not ``xbaidu.com``);
    ``full:domain``     exact rule: that one name only;
    ``keyword:word``    names containing word (``keyword:google``);
    ``regexp:pattern``  names where Python's ``re.search(pattern, name)`` finds a
                        match; the name is normalised (lower case, A-labels, no
                        trailing dot); compiled at load;
    ``cidr:network``    IP-literal hosts inside network (``cidr:10.0.0.0/8``,
                        ``cidr:fd00::/8``); names never match a cidr rule.
* ``#`` starts a comment (whole line or trailing; so a regexp cannot contain
  ``#`` - write ``\x23``); blank lines are ignored.
* The FIRST occurrence of a rule wins, across files too (``load_rule_files``
  reads them as if concatenated), so a user overrides a rule by writing a
  line above it. Different kinds are different rules (``full:x`` and ``x``).
* Anything else (spaces instead of the TAB, an unknown direction, an empty or
  invalid domain, a bad pattern or network) raises
  ``ConfigError("file:line: why: 'line'")``: the proxy refuses to start rather than guess.

Lookup (``RuleSet.lookup(host)``) takes a host as a request names it (any
case, trailing dots, ``:port``, Unicode, IP literals), brings it to the one
spelling of rules/names.py and returns the action of the rule that decides
it, or ``None`` when no rule matches (the caller applies its default
direction). It does not validate: the proxy's edge (``canonical_host``, which
both front ends call) refuses a host that is neither a name nor an IP literal
before any rule is asked, so that work is not done twice; a lower-case string
that is no valid name (``a..b.com``, a 64-character label) gets the answer of
its dot-separated suffixes. Precedence for a name:

1. an exact (``full:``) rule for the name;
2. the suffix rule for the name itself, then those of its parents, nearest
   first (``www.baidu.com`` -> ``baidu.com`` -> ``com``);
3. keyword and regexp rules, the first in file order that matches;

and for an IP literal the cidr rule with the longest prefix containing it.
So ``block full:x.com`` wins over ``direct x.com`` for ``x.com`` whichever
comes first, and any suffix rule (even ``com``) wins over every keyword.

Structure
---------
The suffix matcher is a trie on reversed labels: the node for ``com`` has a
child ``baidu`` whose child is ``www``, and a rule hangs on the node where its
domain ends. We store it flattened: every node is identified by its path
from the root, which is exactly the suffix string (``www.baidu.com`` /
``baidu.com`` / ``com``), so one dict keyed by that string *is* the trie's
node table, holding only the nodes that carry a rule. Walking from the leaf
towards the root is then "drop the leftmost label" (``str.partition``), one
hash probe per level, stopping at the first (deepest) node with a rule - the
same answer as walking the trie root-to-leaf and remembering the deepest
rule seen. Exact rules share the table, so the first probe serves both: a
name with an exact rule holds an ``_ExactRule`` (its exact action, and its
own suffix rule for the names below it). Keyword/regexp rules (patterns.py)
run only when neither decides, and only when the screen of the name's last
label (where the walk ends) lets the name through; cidr rules (networks.py)
only for IP literals.

Cost of a lookup: for a lower-case ASCII host with a letter (every name as
the edge passes it on, and most as clients write them) three C calls
(``isascii``, ``islower``, ``partition`` for a ``:port``), then the probes;
upper case the same after ``lower()``; anything else (trailing dots, IDN,
IP literals) goes through ``normalize_host``.

Where a rule came from (``RuleSet.origin(host)``, for the proxy's access log): each kept
rule's origin ("file:line", given by ``load_rule_files``) sits in side tables keyed like the
lookup tables, so ``lookup`` carries nothing extra; ``origin`` walks the same precedence
on those (the proxy asks once per host and caches the answer with the decision).

Pure: no I/O except ``load_rule_files``, which only reads the named files; no logging.
"""
import enum
import ipaddress
import re
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence

from ..errors import ConfigError
from ..netutil import ip_literal
from .names import MAX_NAME_LENGTH, normalize_host, normalize_name
from .networks import NetworkTable, parse_network
from .patterns import PatternMatcher


class Action(enum.Enum):
    BLOCK = "block"
    DIRECT = "direct"
    FORWARD = "forward"

    # Members are singletons compared by identity: hash them as objects, in C (Enum's own
    # __hash__ is Python code, run on every dict lookup keyed by an action).
    __hash__ = object.__hash__


# Rule kinds; the rule-file prefix is the kind + ":" (none for DOMAIN).
DOMAIN, FULL, KEYWORD, REGEXP, CIDR = "domain", "full", "keyword", "regexp", "cidr"
KINDS = (DOMAIN, FULL, KEYWORD, REGEXP, CIDR)


class Rule(NamedTuple):
    action: Action
    kind: str                   # one of KINDS
    value: str                  # normalised name, keyword, pattern source, or network text


_is_keyword = re.compile(r"[a-z0-9_.-]+").fullmatch

_ACTIONS_BY_NAME = {action.value: action for action in Action}

# A well-formed domain or full: rule line without comment, already
# normalised: the bulk of a generated file. Anything else takes the careful
# path, which also produces the error messages.
_is_plain_rule_line = re.compile(
    r"(block|direct|forward)\t(full:)?([a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*)(?<![0-9])[ \t]*\r?\n?").fullmatch


class _ExactRule:
    """The action of a name's exact (full:) rule, in the suffix table under that name; below
    is the name's own suffix rule (or None), which still decides the names under it.

    Falsy, so that one truth test on the hot path tells a suffix rule (an Action, truthy)
    from None and from these few.
    """

    __slots__ = ("exact", "below")

    def __init__(self, exact: Action, below: Optional[Action]):
        self.exact, self.below = exact, below

    def __bool__(self) -> bool:
        return False


def _ip_of_host(host: str):
    """The address of an IP-literal host ('10.0.0.1', '10.0.0.1:80', '::1', '[::1]:443'), else None."""
    if host.startswith("["):
        close = host.find("]")
        if close < 0 or (close + 1 < len(host) and host[close + 1] != ":"):
            return None
        host = host[1:close]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    # The parse the resolver uses too (a zone dropped): the address the rules decide on is
    # the one connected to ("10.0.0.1%1" must not slip past cidr:10.0.0.0/8).
    return ip_literal(host)


class RuleSet:
    """The loaded rules. ``lookup(host) -> Action | None``; see the module docstring."""

    __slots__ = ("_rule_of_name", "_patterns", "_screen_of_label", "_default_screen", "_networks", "counts",
                 "_size", "_exact_origins", "_suffix_origins", "_network_origins", "_pattern_origins")

    def __init__(self, rules: Iterable[Rule] = (), origins: Optional[Sequence[str]] = None):
        """origins: where each rule came from ("file:line"), in the order of rules; without
        them a rule's origin is "rule N" (its place in rules, from 1)."""
        exact: Dict[str, Action] = {}
        suffix: Dict[str, Action] = {}
        self._networks = NetworkTable()
        self._exact_origins: Dict[str, str] = {}
        self._suffix_origins: Dict[str, str] = {}
        self._network_origins = NetworkTable()
        self._pattern_origins: List[str] = []
        self.counts: Dict[Action, int] = {action: 0 for action in Action}
        patterns = []
        seen_patterns = set()
        for number, (action, kind, value) in enumerate(rules, 1):
            origin = origins[number - 1] if origins is not None else "rule %d" % number
            if kind == DOMAIN or kind == FULL:
                table = exact if kind == FULL else suffix
                if value in table:          # first occurrence wins
                    continue
                table[value] = action
                (self._exact_origins if kind == FULL else self._suffix_origins)[value] = origin
            elif kind == CIDR:
                network = ipaddress.ip_network(value)
                if not self._networks.add(network, action):
                    continue
                self._network_origins.add(network, origin)
            else:
                if (kind, value) in seen_patterns:
                    continue
                seen_patterns.add((kind, value))
                patterns.append((action, kind, value))
                self._pattern_origins.append(origin)
            self.counts[action] += 1
        # One table, so that a lookup probes the full name once: suffix rules, and for
        # a name with an exact rule an _ExactRule that keeps the name's suffix rule.
        for name, action in exact.items():
            suffix[name] = _ExactRule(action, suffix.get(name))
        # Bound methods made once: each saves the hot path an attribute and a method object.
        self._rule_of_name = suffix.get
        self._patterns = PatternMatcher(patterns) if patterns else None
        self._screen_of_label = self._patterns.screens.get if patterns else {}.get
        self._default_screen = self._patterns.default_screen if patterns else None
        self._size = sum(self.counts.values())

    def __len__(self) -> int:
        return self._size

    def lookup(self, host: str) -> Optional[Action]:
        """Action of the rule that decides host (name, name:port or IP literal), None if none."""
        name = None
        if host.isascii():
            spelled = host
            if not spelled.islower():       # upper case, or no letter at all (an IP literal)
                spelled = host.lower()
                if not spelled.islower():
                    spelled = None
            if spelled is not None:
                name, colon, port = spelled.partition(":")     # the port is not looked at
                if name[-1:] == "." or (colon and ":" in port):
                    name = None             # a trailing dot, or an IPv6 literal: the full path
        if name is None:
            name = normalize_host(host)
            if name is None:
                if len(self._networks):
                    address = _ip_of_host(host)
                    if address is not None:
                        return self._networks.lookup(address)
                return None
        # Leaf to root; partition() is one C call where find() + slice are two.
        get = self._rule_of_name
        action = get(name)
        if action:
            return action
        if action is not None:          # an exact rule for the name (falsy: see _ExactRule)
            return action.exact
        suffix = name
        while True:
            label, dot, suffix = suffix.partition(".")
            if not dot:
                break
            action = get(suffix)
            if action:
                return action
            if action is not None and action.below is not None:
                return action.below
        # label is the last one: a pattern can only match if the screen for it lets the name through.
        screen = self._screen_of_label(label, self._default_screen)
        if screen is not None and screen("." + name) is not None:
            return self._patterns.match(name)
        return None


    def origin(self, host: str) -> Optional[str]:
        """Where the rule that decides host came from ("file:line"), None if no rule does:
        the precedence of lookup, on the side tables (not for the hot path)."""
        name = normalize_host(host)
        if name is None:
            address = _ip_of_host(host)
            return None if address is None else self._network_origins.lookup(address)
        origin = self._exact_origins.get(name)
        suffix = name
        while origin is None:
            origin = self._suffix_origins.get(suffix)
            label, dot, suffix = suffix.partition(".")
            if not dot:
                break
        if origin is None and self._patterns is not None:
            index = self._patterns.first(name)
            if index is not None:
                origin = self._pattern_origins[index]
        return origin


def parse_target(target: str) -> Rule:
    """The part after the TAB -> Rule(None, kind, value); ValueError(why) if malformed.

    dlmerge calls it too, so that it only writes rules this parser loads.
    """
    if "#" in target:
        raise ValueError("'#' starts a comment, so a rule cannot contain it (in a regexp write \\x23)")
    kind, colon, value = target.partition(":")
    if not colon or kind not in KINDS or kind == DOMAIN:
        kind, value = DOMAIN, target
    elif not value:
        raise ValueError("empty %s after the %s: prefix" % ("domain" if kind == FULL else "value", kind))
    if any(c.isspace() for c in value):
        raise ValueError("expected one %s, found whitespace inside %r" % (
            "domain" if kind in (DOMAIN, FULL) else kind + " value", value))
    if kind == KEYWORD:
        word = value.lower()
        if not _is_keyword(word):
            raise ValueError("bad keyword %r (letters, digits, '-', '_', '.'; IDN in its xn-- form)" % value)
        return Rule(None, KEYWORD, word)
    if kind == REGEXP:
        try:
            re.compile(value)
        except (re.error, RecursionError, OverflowError) as e:
            raise ValueError("bad regexp %r: %s" % (value, e)) from None
        return Rule(None, REGEXP, value)
    if kind == CIDR:
        return Rule(None, CIDR, str(parse_network(value)))
    if ip_literal(value) is not None:
        raise ValueError("bad domain %r (an IP address; write cidr:%s to match it)" % (value, value))
    if ":" in value:
        raise ValueError("bad domain %r (the prefixes understood are %s)"
                         % (value, ", ".join(k + ":" for k in KINDS if k != DOMAIN)))
    if value.startswith("*.") or value.startswith("."):
        raise ValueError("bad domain %r (write %r: a rule already covers every subdomain)"
                         % (value, value.lstrip("*.")))
    name = normalize_name(value)
    if name is None:
        raise ValueError("bad domain %r" % value)
    return Rule(None, kind, name)


def _parse_rule_line(line: str) -> Optional[Rule]:
    """One line -> rule, None for blank/comment; ValueError(why) if malformed."""
    hash_at = line.find("#")
    if hash_at >= 0:
        line = line[:hash_at]
    line = line.strip()
    if not line:
        return None
    direction, tab, target = line.partition("\t")
    if not tab:
        if " " in line:
            raise ValueError("expected direction<TAB>domain, found spaces instead of a TAB")
        if line in _ACTIONS_BY_NAME:
            raise ValueError("empty domain")
        raise ValueError("expected direction<TAB>domain")
    action = _ACTIONS_BY_NAME.get(direction)
    if action is None:
        if direction.strip() in _ACTIONS_BY_NAME:
            raise ValueError("spaces around the direction")
        raise ValueError("unknown direction %r (expected block, direct or forward)" % direction)
    target = target.strip()         # extra TABs, or spaces before a trailing comment
    if not target:
        raise ValueError("empty domain")
    return parse_target(target)._replace(action=action)


def parse_rules(lines: Iterable[str], source: str = "<rules>", origins: Optional[List[str]] = None) -> List[Rule]:
    """Rule lines -> [Rule(action, kind, value)] in file order, duplicates kept.

    origins: a list that gets "source:lineno" of each rule appended, in step with the rules.
    Raises ConfigError("source:lineno: why: 'line'") at the first malformed line.
    """
    rules = []
    actions = _ACTIONS_BY_NAME
    for lineno, line in enumerate(lines, 1):
        plain = _is_plain_rule_line(line)
        if plain is not None:
            direction, exact, domain = plain.groups()
            if len(domain) <= MAX_NAME_LENGTH:
                rules.append(Rule(actions[direction], DOMAIN if exact is None else FULL, domain))
                if origins is not None:
                    origins.append("%s:%d" % (source, lineno))
                continue
        try:
            rule = _parse_rule_line(line)
        except ValueError as e:
            raise ConfigError("%s:%d: %s: %r" % (source, lineno, e, line.rstrip("\r\n"))) from None
        if rule is not None:
            rules.append(rule)
            if origins is not None:
                origins.append("%s:%d" % (source, lineno))
    return rules


def load_rule_files(paths: Sequence[str]) -> RuleSet:
    """Read the rule files in order (earlier files take precedence) into one RuleSet."""
    rules: List[Rule] = []
    origins: List[str] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8-sig") as f:     # a BOM (Windows editors) is not part of a rule
                rules.extend(parse_rules(f, source=path, origins=origins))
        except OSError as e:
            raise ConfigError("cannot read rule file %s: %s" % (path, e.strerror or e)) from None
        except UnicodeDecodeError as e:
            raise ConfigError("rule file %s is not UTF-8 text (byte %d)" % (path, e.start)) from None
    return RuleSet(rules, origins)
