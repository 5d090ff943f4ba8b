"""A forwarding rules file (``--rules``): any bytes are rules or a RulesError whose every
problem names a line inside the file; the rules that parse re-parse from their own text to
the same rules, and judge any flow without an exception."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["pcapip", "common"]):
    from common import Broken, scratch

    from pcapip.rules import RULE_METHODS, RulesError, RuleSet, parse_rules


def test_one(data: bytes) -> None:
    path = scratch(data, ".rules")
    try:
        rules = RuleSet.load(path)
    except RulesError as exc:
        lines = data.count(b"\n") + 1
        if not exc.problems or any(not 0 <= n <= lines for n, _ in exc.problems):
            raise Broken(f"a rules problem outside the file's {lines} lines: {exc}") from None
        return
    again = parse_rules("\n".join(r.text for r in rules.rules))
    if [(r.transport, r.forwarding, r.origin, r.origin_ports, r.method) for r in again] != [
        (r.transport, r.forwarding, r.origin, r.origin_ports, r.method) for r in rules.rules
    ]:
        raise Broken("a rule that does not re-parse from its own text to itself")
    for r in rules.rules[:3]:
        for port in (r.origin_ports[0], r.origin_ports[-1], 1):
            for method in (*RULE_METHODS[:3], "none", "unknown"):
                v = rules.judge(r.transport, "10.0.0.1", port, method, r.forwarding[0], True, True)
                if v.code not in (None, "rule.mismatch", "rule.unmatched"):
                    raise Broken(f"a verdict code outside the catalogue: {v.code}")


def seeds():
    yield (b"tcp:80-90 origin.example.com 80-90 off toa\ntcp:443 198.51.100.20 8443 on ppv2\n"
           b"udp:38888;38889 og:game-origins 38888;38889 off ppv2\n"
           b"tcp:123 test.origin.com 456 on ppv1\n")
    yield b"# comment\n\nTCP:1000-1009 [2001:db8::1] 2000-2009 OFF PPV1\n"
    yield b"udp:53 a.example 53 off toa\ntcp:70000 x 1 on off\n"


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
