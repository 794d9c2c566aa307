"""Merge resolved domain-list-community lists into one tomato rule file (pure).

Mapping (the seed's, generalised to user-chosen lists):

* every entry of a ``block`` list, and every entry tagged ``@ads`` in any
  selected list, -> block;
* an entry of a ``direct`` list (default ``cn``) -> direct, unless tagged
  ``@!cn`` (no access point in China mainland) -> forward;
* an entry of a ``forward`` list (default ``geolocation-!cn``) -> forward,
  unless tagged ``@cn`` (has an access point in China mainland) -> direct.

``domain`` entries become suffix rules, ``full`` entries exact (``full:``)
rules, ``keyword`` and ``regexp`` entries ``keyword:`` and ``regexp:`` rules
(the proxy matches them only when no domain rule decides a name). A value
that would not load as a rule (a bad domain, a regexp Python cannot compile,
a keyword with odd characters) is skipped with a warning.

Conflicts: when the same rule (same kind and value) gets several
directions, block beats direct beats forward (so a name in both ``cn`` and
``geolocation-!cn`` ends up direct). At lookup an exact rule beats the suffix
rule of the same name (see rules/ruleset.py), so an exact rule is dropped when
the suffix rule of the same name has a stronger direction: the name then gets
the stronger one, as it would if the two were the same rule.

Rules that cannot change an answer are left out ("redundant"): a suffix rule
whose nearest enclosing suffix rule has the same direction, an exact rule
whose name would get the same direction without it. Both judgements look only
at suffix rules, and stay right with keyword/regexp rules present: these are
consulted only for names no suffix rule covers, and a rule is only ever left
out when an enclosing suffix rule covers the same names with the same
direction (never because the default would give the same answer, which a
keyword could change). Keyword and regexp rules are all kept.

Output is one section per direction (block, direct, forward): suffix and
exact rules sorted by reversed labels, then keyword and regexp rules sorted
by text, so the same input always gives the same bytes. Every kept rule is a
distinct key; among keyword/regexp rules, whose file order decides between
two that match the same name, the block section comes first, then direct,
then forward: the same "block beats direct beats forward" as for conflicts.

Nothing here reads files or logs: ``merge`` returns the rules, the counts and
the warnings; ``render`` returns the text.
"""
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ..rules import Action, Rule, normalize_name
from ..rules.ruleset import DOMAIN, FULL, KEYWORD, REGEXP, parse_target
from .data import Entry

DEFAULT_BLOCK: Tuple[str, ...] = ()
DEFAULT_DIRECT = ("cn",)
DEFAULT_FORWARD = ("geolocation-!cn",)

ADS_ATTR = "ads"
CN_ATTR = "cn"
NOT_CN_ATTR = "!cn"

# Stronger first: the order of sections in the output, and the winner when
# one rule gets several directions.
PRIORITY = (Action.BLOCK, Action.DIRECT, Action.FORWARD)
_RANK = {action: rank for rank, action in enumerate(PRIORITY)}
_PATTERN_KINDS = (KEYWORD, REGEXP)

Key = Tuple[str, str]      # (kind, value as written to the rule file)


class MergeResult(NamedTuple):
    rules: List[Rule]                       # output order: block, direct, forward
    counts: Dict[Action, int]               # rules kept per direction
    kinds: Dict[str, int]                   # rules kept per kind (domain, full, keyword, regexp)
    skipped: int                            # distinct values that would not load as rules
    redundant: int                          # rules left out because they change no answer
    warnings: List[str]                     # one line each, for the CLI to log


def direction_of(entry: Entry, list_action: Action) -> Action:
    """The direction an entry of a list selected for list_action gets."""
    attrs = entry.attrs
    if ADS_ATTR in attrs:
        return Action.BLOCK
    if list_action is Action.DIRECT and NOT_CN_ATTR in attrs:
        return Action.FORWARD
    if list_action is Action.FORWARD and CN_ATTR in attrs:
        return Action.DIRECT
    return list_action


def _sort_key(rule: Rule):
    if rule.kind in _PATTERN_KINDS:
        return (1, rule.kind, rule.value)
    return (0, rule.value.split(".")[::-1], rule.kind == FULL)


def _nearest_suffix(suffix: Mapping[str, Action], domain: str, include_self: bool) -> Optional[Action]:
    name = domain
    if not include_self:
        dot = name.find(".")
        if dot < 0:
            return None
        name = name[dot + 1:]
    while True:
        action = suffix.get(name)
        if action is not None:
            return action
        dot = name.find(".")
        if dot < 0:
            return None
        name = name[dot + 1:]


def _rule_value(entry: Entry, cache: Dict[Tuple[str, str], Optional[str]]) -> Optional[str]:
    """The entry's value as the rule file will hold it, None if it would not load."""
    key = (entry.type, entry.value)
    if key not in cache:
        if entry.type in _PATTERN_KINDS:
            try:
                cache[key] = parse_target("%s:%s" % key).value
            except ValueError:
                cache[key] = None
        else:
            cache[key] = normalize_name(entry.value)
    return cache[key]


def merge(resolved: Mapping[str, Sequence[Entry]], block: Iterable[str] = DEFAULT_BLOCK,
          direct: Iterable[str] = DEFAULT_DIRECT, forward: Iterable[str] = DEFAULT_FORWARD) -> MergeResult:
    """resolved = {list name: entries} (see data.resolve_many); the other arguments name the lists."""
    chosen: Dict[Key, Action] = {}
    skipped = set()
    warnings: List[str] = []
    values: Dict[Tuple[str, str], Optional[str]] = {}
    for list_action, names in ((Action.BLOCK, block), (Action.DIRECT, direct), (Action.FORWARD, forward)):
        for list_name in names:
            for entry in resolved[list_name]:
                value = _rule_value(entry, values)
                if value is None:
                    if (entry.type, entry.value) not in skipped:
                        skipped.add((entry.type, entry.value))
                        what = "domain" if entry.type in (DOMAIN, FULL) else entry.type
                        warnings.append("%s: bad %s %r skipped" % (entry.origin, what, entry.value))
                    continue
                key = (entry.type, value)
                action = direction_of(entry, list_action)
                old = chosen.get(key)
                if old is None or _RANK[action] < _RANK[old]:
                    chosen[key] = action

    suffix = {value: action for (kind, value), action in chosen.items() if kind == DOMAIN}
    kept: Dict[Action, List[Rule]] = {action: [] for action in PRIORITY}
    redundant = 0
    for (kind, value), action in chosen.items():
        if kind == FULL:
            own_suffix = suffix.get(value)
            if own_suffix is not None and _RANK[own_suffix] < _RANK[action]:
                redundant += 1          # the stronger suffix rule of the same name decides
                continue
            covering = _nearest_suffix(suffix, value, include_self=True)
        elif kind == DOMAIN:
            covering = _nearest_suffix(suffix, value, include_self=False)
        else:
            covering = None             # keyword/regexp: always kept (see the docstring)
        if covering is action:
            redundant += 1
            continue
        kept[action].append(Rule(action, kind, value))

    rules = []
    for action in PRIORITY:
        rules.extend(sorted(kept[action], key=_sort_key))
    kinds = {kind: 0 for kind in (DOMAIN, FULL, KEYWORD, REGEXP)}
    for rule in rules:
        kinds[rule.kind] += 1
    return MergeResult(
        rules=rules,
        counts={action: len(kept[action]) for action in PRIORITY},
        kinds=kinds,
        skipped=len(skipped),
        redundant=redundant,
        warnings=warnings,
    )


def render(result: MergeResult, header_lines: Sequence[str]) -> str:
    """The rule file: '# ' + each header line, then one section per direction."""
    out = ["# " + line if line else "#" for line in header_lines]
    current = None
    for action, kind, value in result.rules:
        if action is not current:
            current = action
            out.append("")
            out.append("# %s (%d rules)" % (action.value, result.counts[action]))
        out.append("%s\t%s%s" % (action.value, "" if kind == DOMAIN else kind + ":", value))
    out.append("")
    return "\n".join(out)
