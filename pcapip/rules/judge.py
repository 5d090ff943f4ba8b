"""Which forwarding rule a flow came through, and whether the wire agrees with the rule.

A flow is matched by what the origin sees: its protocol, origin port and (when the rule
names an IP literal) origin address; a rule naming a domain or an origin group matches by
port alone. When a PROXY header names the port the client connected to, that forwarding
port picks among rules sharing an origin port, and must be one the rule forwards there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pcapip.rules.parse import Rule, load_rules

#: what a flow's ``method`` column says it carried, in words
_CARRIED = {"toa": "a TOA option", "ppv1": "a PROXY v1 header", "ppv2": "a PROXY v2 header"}
_CACHE_MAX = 100_000


@dataclass(frozen=True)
class Verdict:
    """A flow's rule (None: no rule covers it) and, when the wire disagrees, the finding."""

    rule: Rule | None
    code: str | None = None  # "rule.mismatch", "rule.unmatched" or None
    message: str = ""


def _agrees(says: str, method: str) -> bool:
    return says == method or (says == "off" and method == "none") or method == "unknown"


class RuleSet:
    """A rules file, asked flow by flow (answers are cached: few flows differ in what
    matters here, even in a flood)."""

    def __init__(self, rules: Sequence[Rule], path: str = "") -> None:
        self.rules = list(rules)
        self.path = path
        # (protocol, origin port) -> the rules forwarding there, in file order: at most one
        # entry per forwarding port (a file uses each once), so a port scan asks in O(1)
        self._covering: dict[tuple[str, int], list[Rule]] = {}
        for r in self.rules:
            for port in dict.fromkeys(r.origin_ports):
                self._covering.setdefault((r.transport, port), []).append(r)
        self._verdicts: dict[tuple, Verdict] = {}

    @classmethod
    def load(cls, path: str | Path) -> RuleSet:
        """The rules of a file; :class:`pcapip.rules.parse.RulesError` if any line is bad."""
        return cls(load_rules(path), str(path))

    def __len__(self) -> int:
        return len(self.rules)

    def covering(self, transport: str, port: int) -> list[Rule]:
        """The rules of this protocol that forward to origin port ``port``, in file order."""
        return self._covering.get((transport, port), [])

    def candidates(self, transport: str, ip: str | None, port: int) -> list[Rule]:
        """Rules naming this origin address (IP literal) first; else those by port alone."""
        covering = self.covering(transport, port)
        try:
            addr = ipaddress.ip_address(ip) if ip else None
        except ValueError:
            addr = None
        literal = [r for r in covering if r.origin_ip is not None and r.origin_ip == addr]
        return literal or [r for r in covering if r.origin_ip is None]

    def judge(
        self,
        transport: str,
        origin_ip: str | None,
        origin_port: int | None,
        method: str,
        proxy_port: int | None,
        could_toa: bool,
        could_pp: bool,
    ) -> Verdict:
        """The rule of one flow and the finding, if any. ``could_toa``/``could_pp``: the
        flow got as far as where a TOA option / a PROXY header would have been (see
        ``pcapip.flows.crossflow.missing_client``); before that, no method is judged.
        ``proxy_port``: the PROXY header's destination port; None without one, and for a
        proxy's health check naming its own connection."""
        key = (transport, origin_ip, origin_port, method, proxy_port, could_toa, could_pp)
        got = self._verdicts.get(key)
        if got is None:
            got = self._judge(*key)
            if len(self._verdicts) >= _CACHE_MAX:
                self._verdicts.clear()
            self._verdicts[key] = got
        return got

    def _judge(
        self,
        transport: str,
        ip: str | None,
        port: int | None,
        method: str,
        proxy_port: int | None,
        could_toa: bool,
        could_pp: bool,
    ) -> Verdict:
        cands = self.candidates(transport, ip, port) if port is not None else []
        if not cands:
            return Verdict(None, "rule.unmatched", self._unmatched(transport, ip, port))
        pool = cands
        if proxy_port is not None and method in ("ppv1", "ppv2"):
            pool = [r for r in cands if proxy_port in r.forwarding_for(port)] or cands
        rule = next((r for r in pool if _agrees(r.method, method)), pool[0])
        says = rule.method
        at = f"the rule at line {rule.line} says {says}"
        if method in _CARRIED and says != method:
            return Verdict(rule, "rule.mismatch", _carried_other(at, says, method))
        if method == "none" and says == "toa" and could_toa:
            return Verdict(
                rule,
                "rule.mismatch",
                f"{at}, but the handshake carried no TOA: "
                "the origin sees the proxy's address as the client; enable TOA for "
                "this rule on the proxy, or look for a path that bypasses it",
            )
        if method == "none" and says in ("ppv1", "ppv2") and could_pp:
            return Verdict(
                rule,
                "rule.mismatch",
                f"{at}, but the stream starts without a "
                "PROXY header: an origin expecting one rejects the connection; "
                f"enable {says} for this rule on the proxy, or look for a path that "
                "bypasses it",
            )
        if says == method and proxy_port is not None and method in ("ppv1", "ppv2"):
            fwd = rule.forwarding_for(port)
            if proxy_port not in fwd:
                ports = ",".join(map(str, fwd[:5])) + ("…" if len(fwd) > 5 else "")
                return Verdict(
                    rule,
                    "rule.mismatch",
                    f"the PROXY header's destination port "
                    f"{proxy_port} is not a forwarding port of the rule at line "
                    f"{rule.line} for origin port {port} ({ports}): the connection "
                    "came through another rule or listener",
                )
        return Verdict(rule)

    def _unmatched(self, transport: str, ip: str | None, port: int | None) -> str:
        where = (
            f"{transport} {ip}:{port}" if ":" not in (ip or "") else f"{transport} [{ip}]:{port}"
        )
        msg = f"no rule forwards to {where}"
        near = [r for t in ("tcp", "udp") for r in self.covering(t, port)] if port else []
        if near:
            r = near[0]
            to = r.origin if r.transport == transport else f"{r.origin} ({r.transport})"
            msg += f" (the rule at line {r.line} forwards to {to} port {port})"
        return msg


def ruleset(spec: RuleSet | str | Path | None) -> RuleSet | None:
    """``--rules`` as every front end takes it: None, a RuleSet, or a rules file's path
    (loaded now: a bad file fails before any capture is read)."""
    if spec is None or isinstance(spec, RuleSet):
        return spec
    return RuleSet.load(spec)


def _carried_other(at: str, says: str, method: str) -> str:
    """The message for a flow that carried a client address the rule does not say."""
    got = _CARRIED[method]
    if says == "off" and method == "toa":
        return (
            f"{at}, but the flow carried {got}: another proxy in front sets it, or the "
            "rule is out of date"
        )
    if says == "off":
        return (
            f"{at}, but the flow carried {got}: an origin set up for this rule reads it "
            f"as data; set the rule to {method} and the origin to expect it, or stop the "
            "sender adding it"
        )
    return (
        f"{at}, but the flow carried {got}: the rules do not describe the proxy that sent "
        f"it (out of date, or another proxy in front); make them agree, with the origin "
        f"set to accept {method}"
    )
