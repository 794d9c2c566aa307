"""Merge resolved domain-list-community lists into one tomato rule file (pure).

Mapping (the seed's, generalised to user-chosen lists):

* every entry of a ``block`` list, and every entry tagged ``@ads`` in any
  selected list, -> block;
* an entry of a ``direct`` list (default ``cn``) -> direct, unless tagged
  ``@!cn`` (no access point in China mainland) -> forward;
* an entry of a ``forward`` list (default ``geolocation-!cn``) -> forward,
  unless tagged ``@cn`` (has an access point in China mainland) -> direct.

``domain`` entries become suffix rules, ``full`` entries exact (``full:``)
rules. ``keyword`` and ``regexp`` entries cannot be expressed as domain rules:
they are skipped and counted. A bad domain value is skipped with a warning.

Conflicts: when the same rule (same domain, same exactness) gets several
directions, block beats direct beats forward (so a name in both ``cn`` and
``geolocation-!cn`` ends up direct). At lookup an exact rule beats the suffix
rule of the same name (see proxy/rules.py), so an exact rule is dropped when
the suffix rule of the same name has a stronger direction: the name then gets
the stronger one, as it would if the two were the same rule.

Rules that cannot change an answer are left out ("redundant"): a suffix rule
whose nearest enclosing suffix rule has the same direction, an exact rule
whose name would get the same direction without it. Output is one section per
direction (block, direct, forward), each sorted by reversed labels, so the
same input always gives the same bytes; as every kept rule is a distinct key,
first-occurrence-wins never has to break a tie, and a user who prepends a line
overrides everything below.

Nothing here reads files or logs: ``merge`` returns the rules, the counts and
the warnings; ``render`` returns the text.
"""
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ..rules import EXACT_PREFIX, Action, normalize_name
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

Key = Tuple[str, bool]      # (normalised domain, exact)


class MergeResult(NamedTuple):
    rules: List[Tuple[Action, str, bool]]   # output order: block, direct, forward
    counts: Dict[Action, int]               # rules kept per direction
    skipped: Dict[str, int]                 # "keyword"/"regexp"/"bad domain" -> distinct entries
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


def _sort_key(domain: str):
    return domain.split(".")[::-1]


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


def merge(resolved: Mapping[str, Sequence[Entry]], block: Iterable[str] = DEFAULT_BLOCK,
          direct: Iterable[str] = DEFAULT_DIRECT, forward: Iterable[str] = DEFAULT_FORWARD) -> MergeResult:
    """resolved = {list name: entries} (see data.resolve_many); the other arguments name the lists."""
    chosen: Dict[Key, Action] = {}
    skipped_values: Dict[str, set] = {"keyword": set(), "regexp": set(), "bad domain": set()}
    warnings: List[str] = []
    normalised: Dict[str, Optional[str]] = {}
    for list_action, names in ((Action.BLOCK, block), (Action.DIRECT, direct), (Action.FORWARD, forward)):
        for list_name in names:
            for entry in resolved[list_name]:
                if entry.type == "keyword" or entry.type == "regexp":
                    skipped_values[entry.type].add(entry.value)
                    continue
                value = entry.value
                domain = normalised.get(value, "")
                if domain == "":
                    domain = normalised[value] = normalize_name(value)
                if domain is None:
                    if value not in skipped_values["bad domain"]:
                        skipped_values["bad domain"].add(value)
                        warnings.append("%s: bad domain %r skipped" % (entry.origin, value))
                    continue
                key = (domain, entry.type == "full")
                action = direction_of(entry, list_action)
                old = chosen.get(key)
                if old is None or _RANK[action] < _RANK[old]:
                    chosen[key] = action

    suffix = {domain: action for (domain, exact), action in chosen.items() if not exact}
    kept: Dict[Action, List[Tuple[str, bool]]] = {action: [] for action in PRIORITY}
    redundant = 0
    for (domain, exact), action in chosen.items():
        if exact:
            own_suffix = suffix.get(domain)
            if own_suffix is not None and _RANK[own_suffix] < _RANK[action]:
                redundant += 1          # the stronger suffix rule of the same name decides
                continue
            covering = _nearest_suffix(suffix, domain, include_self=True)
        else:
            covering = _nearest_suffix(suffix, domain, include_self=False)
        if covering is action:
            redundant += 1
            continue
        kept[action].append((domain, exact))

    rules = []
    for action in PRIORITY:
        for domain, exact in sorted(kept[action], key=lambda k: (_sort_key(k[0]), k[1])):
            rules.append((action, domain, exact))
    return MergeResult(
        rules=rules,
        counts={action: len(kept[action]) for action in PRIORITY},
        skipped={kind: len(values) for kind, values in skipped_values.items()},
        redundant=redundant,
        warnings=warnings,
    )


def render(result: MergeResult, header_lines: Sequence[str]) -> str:
    """The rule file: '# ' + each header line, then one section per direction."""
    out = ["# " + line if line else "#" for line in header_lines]
    current = None
    for action, domain, exact in result.rules:
        if action is not current:
            current = action
            out.append("")
            out.append("# %s (%d rules)" % (action.value, result.counts[action]))
        out.append("%s\t%s%s" % (action.value, EXACT_PREFIX if exact else "", domain))
    out.append("")
    return "\n".join(out)
