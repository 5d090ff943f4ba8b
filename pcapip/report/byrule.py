"""``--by rule``: one row per forwarding rule (its flows, by method, and how many the wire
contradicts), then one per origin no rule covers, so a whole configuration is reviewed at a
glance; rules no flow used are listed too."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pcapip.flows.columns import METHODS
from pcapip.report.filters_terms import codes_of, count_codes

if TYPE_CHECKING:
    import pandas as pd

    from pcapip.rules import RuleSet

#: ``--by rule``'s columns: the rule (line, text, its method), flows per method, flows the
#: wire contradicts (``rule.mismatch``), and for origins no rule covers, which (``unmatched``)
BY_RULE_COLUMNS: tuple[str, ...] = (
    "line",
    "rule",
    "rule_method",
    "flows",
    *METHODS,
    "mismatched",
    "unmatched",
    "findings",
    "first_seen",
    "last_seen",
)


def _row(g: pd.DataFrame, **own: Any) -> dict[str, Any]:
    methods = g["method"].astype(str).value_counts()
    mismatched = g["findings"].astype(object).map(lambda c: "rule.mismatch" in codes_of(c))
    return {
        **own,
        "flows": len(g),
        **{m: int(methods.get(m, 0)) for m in METHODS},
        "mismatched": int(mismatched.sum()),
        "findings": count_codes(g["findings"]),
        "first_seen": g["start"].min() if len(g) else None,
        "last_seen": g["end"].max() if len(g) else None,
    }


def _where(transport: str, ip: Any, port: Any) -> str:
    host = f"[{ip}]" if ":" in str(ip) else str(ip)
    return f"{transport} {host}:{port}"


def by_rule(f: pd.DataFrame, rules: RuleSet) -> pd.DataFrame:
    """The rules in file order, then the uncovered origins, most flows first."""
    import pandas as pd

    label = f["rule"].astype(object).fillna("")
    groups = {k: g for k, g in f.groupby(label, sort=False)}
    empty = f.iloc[0:0]
    rows = [
        _row(
            groups.get(r.label, empty), line=r.line, rule=r.text, rule_method=r.method, unmatched=""
        )
        for r in rules.rules
    ]
    loose = groups.get("", empty)
    extra = []
    if len(loose):
        keys = [
            loose["transport"].astype(str),
            loose["origin_ip"].astype(str),
            loose["origin_port"].astype(object),
        ]
        for (t, ip, port), g in loose.groupby(keys, sort=True):
            extra.append(_row(g, line=None, rule="", rule_method="", unmatched=_where(t, ip, port)))
    extra.sort(key=lambda r: -r["flows"])
    out = pd.DataFrame(rows + extra, columns=list(BY_RULE_COLUMNS))
    out["line"] = pd.array(out["line"], dtype="Int64")
    for c in ("flows", *METHODS, "mismatched"):
        out[c] = out[c].astype(np.int64)
    for c in ("first_seen", "last_seen"):
        out[c] = pd.to_datetime(out[c], utc=True)
    return out
