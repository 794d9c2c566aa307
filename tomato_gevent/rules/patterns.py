"""keyword: and regexp: rules, matched fast enough to run on every name no suffix rule decides.

Contract
--------
``PatternMatcher([(action, kind, value), ...])`` with kind ``"keyword"`` (the
name contains value) or ``"regexp"`` (``re.search(value, name)``), in rule-file
order; ``match(name) -> Action | None`` gives the action of the FIRST rule in
that order that matches the (normalised, lower-case) name.

Strategy
--------
Running every pattern on every name costs microseconds (the ~160 regexps of
domain-list-community joined into one alternation took ~270 µs a name: the
engine tries every branch at every position). Almost every name matches none,
so the matcher proves "none" cheaply and only then looks closer:

1. Each rule gets a *required literal*: a string every match must contain.
   A keyword is its own. For a regexp it is the longest literal run in the
   pattern's top-level sequence (``(^|\\.)91porn[0-9]{3}\\.me$`` -> ``91porn``).
   A run that must start a label (after ``^``, ``\\.`` or ``(^|\\.)``) is
   *label-anchored*, a much sharper filter; so is what follows a dot inside
   a run (``.com`` -> label ``com``).
2. All label-anchored literals are merged into one character trie, compiled
   as one regexp ``\\.(?=(t(?:rie|...)))`` searched in ``"." + name``: the
   engine jumps from dot to dot in C and follows one trie path at each. The
   other literals form a second trie searched at every position. A rule
   without a usable literal is checked on every name (none in the shipped data).
3. Only when a trie hits does the matcher collect which literals occur
   (each trie hit gives the longest literal there; shorter literals that are
   its prefixes occur too), and run just those rules' own tests, in rule order.

The literal analysis reads the pattern with the stdlib's regexp parser
(``re._parser``); should that ever fail or change, the rule is simply
checked on every name: slower, never wrong.
"""
import re
from typing import Dict, Iterable, List, Sequence, Set, Tuple

try:                                    # Python >= 3.11
    from re import _constants as _sre
    from re import _parser as _sre_parse
except ImportError:                     # pragma: no cover - Python 3.9 / 3.10
    import sre_constants as _sre
    import sre_parse as _sre_parse

MIN_LITERAL_SCORE = 3       # a literal filters well from ~3 characters; anchoring counts as 2
MAX_LITERAL_LENGTH = 64     # a prefix of a required literal is required too; keeps tries shallow
LABEL_ANCHOR_BONUS = 2

_DOT = ord(".")


def _is_label_start(op, av) -> bool:
    """True if this parsed item matches only at the start of a label: ^, \\A, \\. or (^|\\.)."""
    if op is _sre.AT:
        return av is _sre.AT_BEGINNING or av is _sre.AT_BEGINNING_STRING
    if op is _sre.LITERAL:
        return av == _DOT
    if op is _sre.SUBPATTERN:
        sub = av[-1]
        return len(sub) == 1 and _is_label_start(*sub[0])
    if op is _sre.BRANCH:
        return all(len(alt) == 1 and _is_label_start(*alt[0]) for alt in av[1])
    return False


def required_literal(pattern: str) -> Tuple[str, bool]:
    """(literal, label_anchored) every match of pattern must contain; ("", False) if none found."""
    try:
        parsed = _sre_parse.parse(pattern)
        ignore_case = bool(parsed.state.flags & re.IGNORECASE)
        items = list(parsed)
    except Exception:       # the parser is internal: any surprise means "no literal known"
        return "", False
    best, best_score, best_anchored = "", 0, False
    index = 0
    while index < len(items):
        op, av = items[index]
        if op is not _sre.LITERAL:
            index += 1
            continue
        start = index
        chars = []
        while index < len(items) and items[index][0] is _sre.LITERAL:
            chars.append(chr(items[index][1]))
            index += 1
        run = "".join(chars)
        if ignore_case:
            run = run.lower()       # names are lower case
        candidates = [(run, False)]
        if start > 0 and _is_label_start(*items[start - 1]):
            candidates.append((run, True))
        dot = run.find(".")
        if dot >= 0 and run[dot + 1:]:
            candidates.append((run[dot + 1:], True))
        for literal, anchored in candidates:
            literal = literal[:MAX_LITERAL_LENGTH]
            score = len(literal) + (LABEL_ANCHOR_BONUS if anchored else 0)
            if score > best_score:
                best, best_score, best_anchored = literal, score, anchored
    if best_score < MIN_LITERAL_SCORE:
        return "", False
    return best, best_anchored


def _trie_regexp(literals: Iterable[str]) -> str:
    """One regexp source matching any of literals, factored as a trie, greedy (longest first)."""
    trie: Dict[str, dict] = {}
    for literal in literals:
        node = trie
        for char in literal:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node):
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:%s)" % "|".join(branches)
        if "" in node:                  # a literal ends here; longer ones continue
            return "(?:%s)?" % body
        return body
    return build(trie)


class PatternMatcher:
    """keyword/regexp rules in file order; match(name) -> the first matching rule's action."""

    __slots__ = ("_tests", "_label_search", "_text_search", "_label_hits", "_text_hits",
                 "_by_label_literal", "_by_text_literal", "_prefixes", "_always")

    def __init__(self, rules: Sequence[Tuple[object, str, str]]):
        self._tests = []                # index -> (action, test(name) -> bool)
        by_label: Dict[str, List[int]] = {}
        by_text: Dict[str, List[int]] = {}
        always: List[int] = []
        for index, (action, kind, value) in enumerate(rules):
            if kind == "keyword":
                self._tests.append((action, _keyword_test(value)))
                literal, anchored = (value, False) if len(value) >= MIN_LITERAL_SCORE else ("", False)
            elif kind == "regexp":
                self._tests.append((action, re.compile(value).search))
                literal, anchored = required_literal(value)
            else:
                raise ValueError("not a pattern rule kind: %r" % kind)
            if not literal:
                always.append(index)
            else:
                (by_label if anchored else by_text).setdefault(literal, []).append(index)
        self._always = always
        self._by_label_literal = by_label
        self._by_text_literal = by_text
        literals = set(by_label) | set(by_text)
        # For each literal, the literals that are its prefixes (occurring wherever it occurs).
        self._prefixes = {lit: [lit[:end] for end in range(1, len(lit) + 1) if lit[:end] in literals]
                          for lit in literals}
        # The common case, "no literal anywhere", is one or two searches in C. The label
        # search runs over "." + name (so the first label is a label like the others) and
        # starts with a literal dot, which lets the engine skip from dot to dot; joining
        # both tries into one alternation measured slower than the two searches.
        self._label_search = self._text_search = self._label_hits = self._text_hits = None
        if by_label:
            trie = _trie_regexp(by_label)
            self._label_search = re.compile(r"\." + trie).search
            self._label_hits = re.compile(r"\.(?=(%s))" % trie).findall
        if by_text:
            trie = _trie_regexp(by_text)
            self._text_search = re.compile(trie).search
            self._text_hits = re.compile(r"(?=(%s))" % trie).findall

    def __len__(self):
        return len(self._tests)

    def match(self, name: str):
        """Action of the first rule (file order) matching name, None if none does."""
        dotted = "." + name
        label_hit = self._label_search is not None and self._label_search(dotted) is not None
        text_hit = self._text_search is not None and self._text_search(name) is not None
        if label_hit or text_hit:
            found: Set[int] = set(self._always)
            if label_hit:
                self._collect(self._label_hits(dotted), self._by_label_literal, found)
            if text_hit:
                self._collect(self._text_hits(name), self._by_text_literal, found)
            candidates = sorted(found)
        elif self._always:
            candidates = self._always
        else:
            return None
        tests = self._tests
        for index in candidates:
            action, test = tests[index]
            if test(name):
                return action
        return None

    def _collect(self, hits: List[str], by_literal: Dict[str, List[int]], into: Set[int]) -> None:
        prefixes = self._prefixes
        for hit in hits:
            for literal in prefixes[hit]:
                into.update(by_literal.get(literal, ()))


def _keyword_test(word: str):
    def test(name: str, word=word) -> bool:
        return word in name
    return test


def pattern_rules_in_order(rules: Iterable[Tuple[object, str, str]]) -> List[Tuple[object, str, str]]:
    """The first occurrence of each (kind, value), in order (first occurrence wins)."""
    seen: Set[Tuple[str, str]] = set()
    kept = []
    for action, kind, value in rules:
        if (kind, value) not in seen:
            seen.add((kind, value))
            kept.append((action, kind, value))
    return kept

