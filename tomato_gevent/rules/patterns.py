r"""keyword: and regexp: rules, matched fast enough to run on every name no suffix rule decides.

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

1. Most regexps end in a fixed top-level domain (``\.com$``,
   ``\.(cc|tv)$``): ``final_labels`` reads that set. Rules are grouped by
   it; a name only meets the rules of its own last label plus the rules that
   could match under any (keywords, ``.+$``...). A name under a TLD no
   pattern names costs one dict probe.
2. Within a group each rule gets a *required literal*: a string every match
   must contain. A keyword is its own. For a regexp it is the longest literal
   run in the pattern's top-level sequence (``(^|\.)91porn[0-9]{3}\.me$`` ->
   ``91porn``). A run that must start a label (after ``^``, ``\.`` or
   ``(^|\.)``) is *label-anchored*, a much sharper filter; so is what follows
   a dot inside a run. A literal that only repeats the group's TLD says
   nothing there. Such a rule, when it reads ``(^|\.)REST`` (``(^|\.)[a-z]
   [1-9][0-9][a-z]\.com$``), is screened by REST itself after a dot of
   ``"." + name`` (``label_start_rest``); any other is run on every name of
   its group. REST also replaces a literal that is not label-anchored
   (``(^|\.)[1-5]gaoap\.com$``: ``[1-5]gaoap\.com$`` after a dot, not the
   text ``gaoap.com``).
3. The group's label-anchored literals are merged into one character trie,
   compiled as one regexp ``\.(?:t(?:rie|...)|REST...)`` searched in
   ``"." + name``: the engine jumps from dot to dot in C and follows one trie
   path at each.
   The other literals (few: anchored ones are preferred) form a second trie,
   an alternative of the same regexp, tried at every position.
4. Only when a trie hits does the matcher collect which literals occur
   (each trie hit gives the longest literal there; shorter literals that are
   its prefixes occur too), and run just those rules' own tests, in rule order.
   RuleSet.lookup runs that search itself (``screens``; its suffix walk
   already ends on the last label), so a name no pattern can match costs no
   call into the matcher.

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
STRONG_ANCHOR_LENGTH = 4

_DOT = ord(".")


def _parse(pattern: str):
    """(top-level items, ignore case) of a pattern as the stdlib's regexp parser reads it, or
    None if it cannot: that parser is internal, so any surprise means "nothing known" and the
    rule is simply checked on every name."""
    try:
        parsed = _sre_parse.parse(pattern)
        return list(parsed), bool(parsed.state.flags & re.IGNORECASE)
    except Exception:
        return None


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


def literal_candidates(pattern: str) -> List[Tuple[str, bool]]:
    """[(literal, label_anchored)] every match of pattern contains, best filter first:
    label-anchored ones of STRONG_ANCHOR_LENGTH or more characters, then by length
    (anchoring counting LABEL_ANCHOR_BONUS characters more); [] if none is found."""
    parsed = _parse(pattern)
    if parsed is None:
        return []
    items, ignore_case = parsed
    found = []
    index = 0
    while index < len(items):
        if items[index][0] is not _sre.LITERAL:
            index += 1
            continue
        start = index
        while index < len(items) and items[index][0] is _sre.LITERAL:
            index += 1
        run = "".join(chr(av) for _, av in items[start:index])
        if ignore_case:
            run = run.lower()       # names are lower case
        found.append((run, False))
        if start > 0 and _is_label_start(*items[start - 1]):
            found.append((run, True))
        dot = run.find(".")
        if dot >= 0 and run[dot + 1:]:
            found.append((run[dot + 1:], True))
    scored = set()
    for literal, anchored in found:
        literal = literal[:MAX_LITERAL_LENGTH]
        score = len(literal) + (LABEL_ANCHOR_BONUS if anchored else 0)
        if score >= MIN_LITERAL_SCORE:
            # A label-anchored literal of 4+ characters rarely hits by accident, and text
            # literals need the slower search at every position: prefer the former.
            strong_anchor = anchored and len(literal) >= STRONG_ANCHOR_LENGTH
            scored.add((not strong_anchor, -score, -len(literal), literal, anchored))
    return [(literal, anchored) for _, _, _, literal, anchored in sorted(scored)]


def required_literal(pattern: str) -> Tuple[str, bool]:
    """The best of literal_candidates, ("", False) if there is none."""
    candidates = literal_candidates(pattern)
    return candidates[0] if candidates else ("", False)


MAX_TAIL_STRINGS = 64


def _charset(av):
    """The characters of a parsed [...] class, None if negated, a category or too many."""
    chars = set()
    for op, value in av:
        if op is _sre.LITERAL:
            chars.add(chr(value))
        elif op is _sre.RANGE and value[1] - value[0] < MAX_TAIL_STRINGS:
            chars.update(chr(c) for c in range(value[0], value[1] + 1))
        else:
            return None
    return chars


def _strings(items, ignore_case):
    """The finite set of strings a parsed sequence matches, None if not small and finite."""
    results = {""}
    for op, av in items:
        if op is _sre.LITERAL:
            options = {chr(av)}
        elif op is _sre.SUBPATTERN:
            options = _strings(av[-1], ignore_case)
        elif op is _sre.BRANCH:
            options = set()
            for alternative in av[1]:
                more = _strings(alternative, ignore_case)
                if more is None:
                    return None
                options |= more
        elif op is _sre.IN:
            options = _charset(av)
        else:
            return None
        if options is None or len(results) * len(options) > MAX_TAIL_STRINGS:
            return None
        results = {a + b for a in results for b in options}
    return {r.lower() for r in results} if ignore_case else results


def final_labels(pattern: str):
    r"""The set of last labels (TLDs) a name matching pattern can have, None if any.

    Known when the pattern ends with ``$`` right after a small finite tail that
    contains a dot in every spelling: ``\.com$`` -> {com}, ``\.(co\.uk|net)$``
    -> {uk, net}. Keywords and patterns such as ``\..+$`` give None.
    """
    parsed = _parse(pattern)
    if parsed is None:
        return None
    items, ignore_case = parsed
    if not items or items[-1] != (_sre.AT, _sre.AT_END):
        return None
    for start in range(len(items) - 2, -1, -1):
        tails = _strings(items[start:-1], ignore_case)
        if tails is None:
            return None
        if all("." in tail for tail in tails):
            return frozenset(tail.rpartition(".")[2] for tail in tails)
    return None


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


# Where a pattern without a usable literal starts with "(^|\.)", the rest of it, searched after
# a dot of "." + name, is a test as sharp as the pattern itself and joins the group's prefilter.
_LABEL_START_SOURCES = ("(^|\\.)", "(?:^|\\.)")
# The rest must keep its meaning inside a bigger regexp: no back-references, named groups,
# inline flags, conditionals or look-behinds (which "(?" covers, bar "(?:"), and no "^".
_not_portable = re.compile(r"\\[0-9]|\(\?(?!:)|\^").search


def label_start_rest(pattern: str):
    r"""For ``(^|\.)REST`` (the whole pattern one sequence): REST, which matches right after a
    dot of ``"." + name`` iff pattern matches name; else None."""
    for prefix in _LABEL_START_SOURCES:
        if pattern.startswith(prefix):
            rest = pattern[len(prefix):]
            break
    else:
        return None
    parsed = _parse(pattern)
    if parsed is None:
        return None
    try:
        re.compile(rest)        # it will be compiled inside the group's prefilter
    except re.error:
        return None
    items = parsed[0]
    # One top-level sequence, so "|" in rest cannot reach back over the prefix.
    if not rest or not _is_label_start(*items[0]) or _not_portable(rest):
        return None
    return rest


class _Group:
    """The rules one name can meet (those of its last label, and those of any): prefilter + tests."""

    __slots__ = ("prefilter", "label_hits", "text_hits", "by_label_literal", "by_text_literal",
                 "prefixes", "always", "unscreened")

    def __init__(self, rules):
        """rules: [(rule index, literal, label_anchored, rest)]: the literal occurs in every name
        the rule matches; literal "" = run the rule on every name the prefilter lets through,
        or on every name when it has no label_start_rest either."""
        by_label: Dict[str, List[int]] = {}
        by_text: Dict[str, List[int]] = {}
        self.always = sorted(index for index, literal, _, _ in rules if not literal)
        self.unscreened = sorted(index for index, literal, _, rest in rules if not literal and rest is None)
        rests = sorted({rest for _, literal, _, rest in rules if not literal and rest is not None})
        for index, literal, anchored, _ in rules:
            if literal:
                (by_label if anchored else by_text).setdefault(literal, []).append(index)
        self.by_label_literal, self.by_text_literal = by_label, by_text
        known = set(by_label) | set(by_text)
        # For each literal, the literals that are its prefixes (occurring wherever it occurs).
        self.prefixes = {lit: [lit[:end] for end in range(1, len(lit) + 1) if lit[:end] in known]
                         for lit in known}
        # One search over "." + name proves "no rule can match": the dot in front makes the
        # first label a label like the others, and label literals (and the rests of "(^|\.)"
        # patterns) then follow a literal dot, which lets the engine skip from dot to dot.
        # Text literals (rare) join as a second alternative.
        self.label_hits = self.text_hits = None
        after_dot = []
        if by_label:
            trie = _trie_regexp(by_label)
            after_dot.append(trie)
            self.label_hits = re.compile(r"\.(?=(%s))" % trie).findall
        after_dot.extend("(?:%s)" % rest for rest in rests)
        alternatives = [r"\.(?:%s)" % "|".join(after_dot)] if after_dot else []
        if by_text:
            trie = _trie_regexp(by_text)
            alternatives.append(trie)
            self.text_hits = re.compile(r"(?=(%s))" % trie).findall
        self.prefilter = re.compile("|".join(alternatives)).search if alternatives else None

    def screen(self):
        """screen("." + name) is None only if no rule of the group can match name."""
        if self.unscreened or self.prefilter is None:
            return _anything
        return self.prefilter

    def candidates(self, name, dotted):
        """After a prefilter hit: indices of the rules that may match name, in rule order."""
        found: Set[int] = set(self.always)
        if self.label_hits is not None:
            self._collect(self.label_hits(dotted), self.by_label_literal, found)
        if self.text_hits is not None:
            self._collect(self.text_hits(name), self.by_text_literal, found)
        return sorted(found)

    def _collect(self, hits: List[str], by_literal: Dict[str, List[int]], into: Set[int]) -> None:
        prefixes = self.prefixes
        for hit in hits:
            for literal in prefixes[hit]:
                into.update(by_literal.get(literal, ()))


_anything = re.compile("").search     # the screen of a group with a rule to run on every name


class PatternMatcher:
    """keyword/regexp rules in file order; match(name) -> the first matching rule's action.

    For callers that already know the name's last label (RuleSet's suffix walk ends on it):
    ``screens.get(label, default_screen)`` is None or a screen; only when it is a screen and
    ``screen("." + name)`` is not None can match(name) return an action.
    """

    __slots__ = ("_tests", "_groups", "_any_label", "screens", "default_screen")

    def __init__(self, rules: Sequence[Tuple[object, str, str]]):
        self._tests = []                # index -> (action, test(name) -> bool)
        by_label: Dict[str, list] = {}  # last label -> [(index, literal, anchored, rest)]
        any_label = []                  # rules whose matches may end in any label
        for index, (action, kind, value) in enumerate(rules):
            rest = None
            if kind == "keyword":
                self._tests.append((action, _keyword_test(value)))
                labels = None
                candidates = [(value, False)] if len(value) >= MIN_LITERAL_SCORE else []
            elif kind == "regexp":
                self._tests.append((action, re.compile(value).search))
                labels = final_labels(value)
                candidates = literal_candidates(value)
                rest = label_start_rest(value)
            else:
                raise ValueError("not a pattern rule kind: %r" % kind)
            if labels is not None:
                # Inside its group the TLD is a given: a literal that only spells it filters nothing.
                candidates = [(literal, anchored) for literal, anchored in candidates
                              if literal.strip(".") not in labels]
            literal, anchored = candidates[0] if candidates else ("", False)
            if rest is not None and not anchored:
                # The rest after a dot is sharper than a text literal, and the text alternative
                # would cost the prefilter its dot-to-dot skipping.
                literal = ""
            if labels is None:
                any_label.append((index, literal, anchored, rest))
                continue
            for label in labels:
                by_label.setdefault(label, []).append((index, literal, anchored, rest))
        self._groups = {label: _Group(entries + any_label) for label, entries in by_label.items()}
        self._any_label = _Group(any_label) if any_label else None
        self.screens = {label: group.screen() for label, group in self._groups.items()}
        self.default_screen = self._any_label.screen() if self._any_label is not None else None

    def __len__(self):
        return len(self._tests)

    def match(self, name: str):
        """Action of the first rule (file order) matching name, None if none does."""
        index = self.first(name)
        return None if index is None else self._tests[index][0]

    def first(self, name: str):
        """Index (in the rules given) of the first rule matching name, None if none does."""
        group = self._groups.get(name.rpartition(".")[2], self._any_label)
        if group is None:
            return None
        dotted = "." + name
        prefilter = group.prefilter
        if prefilter is not None and prefilter(dotted) is not None:
            candidates = group.candidates(name, dotted)
        elif group.unscreened:
            candidates = group.unscreened
        else:
            return None
        tests = self._tests
        for index in candidates:
            if tests[index][1](name):
                return index
        return None


def _keyword_test(word: str):
    def test(name: str, word=word) -> bool:
        return word in name
    return test
