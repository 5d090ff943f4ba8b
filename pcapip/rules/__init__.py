"""The proxy's forwarding rules (``--rules``): read them, and judge flows against them."""

from pcapip.rules.judge import RuleSet, Verdict, ruleset
from pcapip.rules.parse import RULE_METHODS, Rule, RulesError, load_rules, parse_rules

__all__ = ["RULE_METHODS", "Rule", "RuleSet", "RulesError", "Verdict", "load_rules", "parse_rules", "ruleset"]
