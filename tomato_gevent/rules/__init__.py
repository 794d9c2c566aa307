"""The rule vocabulary shared by the proxy (which decides) and dlmerge (which writes rule files)."""
from .ruleset import (EXACT_PREFIX, Action, Rule, RuleSet, load_rule_files, normalize_domain,  # noqa: F401
                      normalize_host, parse_rules)
