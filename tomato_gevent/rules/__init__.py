"""The rule vocabulary shared by the proxy (which decides) and dlmerge (which writes rule files)."""
from .names import BadHost, canonical_host, normalize_host, normalize_name  # noqa: F401
from .ruleset import Action, Rule, RuleSet, load_rule_files, parse_rules  # noqa: F401
