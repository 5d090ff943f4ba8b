"""Judging flows against the rules: which rule covers a flow, and each way the wire can
contradict it."""

from __future__ import annotations

import pytest

from pcapip.rules import RuleSet, parse_rules

RULES = RuleSet(
    parse_rules(
        "tcp:8001 10.0.0.2 9001 off ppv1\n"  # 1
        "tcp:8002 10.0.0.2 9001 off ppv2\n"  # 2: a second forwarding port to the same origin
        "tcp:80-90 origin.example 90-100 off toa\n"  # 3: by port alone, range to range
        "tcp:443 10.0.0.9 8443 on off\n"  # 4: another origin address
        "tcp:8443 og:web 8443 on ppv2\n"  # 5: same origin port, by port alone
        "udp:5000 og:game 5000 off ppv2\n"  # 6
    )
)


def judge(port: int, method: str, *, ip: str = "10.0.0.2", transport: str = "tcp",
          dport: int | None = None, toa: bool = True, pp: bool = True):
    return RULES.judge(transport, ip, port, method, dport, toa, pp)


def test_the_header_destination_port_picks_among_rules_to_one_origin_port() -> None:
    v = judge(9001, "ppv1", dport=8001)
    assert v.rule.line == 1 and v.code is None
    v = judge(9001, "ppv2", dport=8002)
    assert v.rule.line == 2 and v.code is None
    # no header port: the rule whose method agrees
    assert judge(9001, "ppv2").rule.line == 2 and judge(9001, "ppv2").code is None


def test_a_forwarding_port_the_rule_does_not_map_there() -> None:
    v = judge(95, "toa")  # TOA: no destination port to check
    assert v.rule.line == 3 and v.code is None
    rules = RuleSet(parse_rules("tcp:80-90 10.0.0.2 90-100 off ppv2\n"))
    ok = rules.judge("tcp", "10.0.0.2", 95, "ppv2", 85, False, True)
    assert ok.code is None
    bad = rules.judge("tcp", "10.0.0.2", 95, "ppv2", 86, False, True)
    assert bad.code == "rule.mismatch" and bad.rule.line == 1
    assert "destination port 86 is not a forwarding port of the rule at line 1" in bad.message
    assert "origin port 95 (85)" in bad.message


@pytest.mark.parametrize(
    ("port", "method", "line", "says"),
    [
        (9001, "toa", 1, "says ppv1, but the flow carried a TOA option"),
        (95, "ppv1", 3, "says toa, but the flow carried a PROXY v1 header"),
        (8443, "ppv2", 4, None),  # 10.0.0.9 only: at 10.0.0.2, rule 5 (og:) covers it
    ],
)
def test_a_method_the_rule_does_not_say(port: int, method: str, line: int, says: str | None) -> None:
    v = judge(port, method)
    if says is None:
        assert v.rule.line == 5 and v.code is None
        v = judge(port, method, ip="10.0.0.9")
        assert v.rule.line == 4 and v.code == "rule.mismatch"
        assert "says off, but the flow carried a PROXY v2 header" in v.message
        assert "reads it as data" in v.message
        return
    assert v.rule.line == line and v.code == "rule.mismatch" and says in v.message


def test_off_with_toa_and_no_address_where_one_is_due() -> None:
    v = judge(8443, "toa", ip="10.0.0.9")
    assert v.code == "rule.mismatch" and "carried a TOA option" in v.message
    assert judge(8443, "none", ip="10.0.0.9").code is None  # off, nothing carried: as said
    v = judge(95, "none")
    assert v.code == "rule.mismatch" and "the handshake carried no TOA" in v.message
    v = judge(9001, "none", dport=None)
    assert v.code == "rule.mismatch" and "starts without a PROXY header" in v.message


def test_no_judgement_before_the_address_was_due_or_when_the_start_is_missing() -> None:
    # a handshake that never completed: no TOA is due yet; no data: no header is due yet
    assert judge(95, "none", toa=False, pp=False).code is None
    assert judge(9001, "none", toa=True, pp=False).code is None
    # start not captured: the method is unknown, the rule still named
    v = judge(9001, "unknown")
    assert v.rule.line == 1 and v.code is None


def test_unmatched_flows_name_the_nearest_rule() -> None:
    v = judge(22, "none")
    assert v.rule is None and v.code == "rule.unmatched"
    assert v.message == "no rule forwards to tcp 10.0.0.2:22"
    v = judge(9001, "ppv1", ip="10.0.0.3")  # rules 1, 2 name 10.0.0.2
    assert v.code == "rule.unmatched"
    assert "(the rule at line 1 forwards to 10.0.0.2 port 9001)" in v.message
    v = judge(5000, "ppv2", transport="tcp")  # a UDP rule only
    assert v.code == "rule.unmatched" and "og:game (udp)" in v.message
    v = judge(9001, "ppv1", ip="2001:db8::1")
    assert "tcp [2001:db8::1]:9001" in v.message


def test_udp_rules_match_udp_flows() -> None:
    assert judge(5000, "ppv2", transport="udp", ip="192.0.2.1").code is None
    v = judge(5000, "none", transport="udp", ip="192.0.2.1")
    assert v.code == "rule.mismatch" and "without a PROXY header" in v.message


def test_distinct_rows_are_numpys_exactly() -> None:
    """The table asks the judge once per distinct row of a slice: the hashed grouping gives
    the groups ``np.unique(axis=0)`` gives, a collision included."""
    import numpy as np

    from pcapip.flows import ruled

    rng = np.random.default_rng(7)
    keys = rng.integers(-3, 4, size=(50_000, 7)).astype(np.int64)
    keys[:, 1] = rng.choice([-5, 2**32 - 1, 167772162], size=50_000)
    uniq, inv = ruled._distinct_rows(keys)
    assert (uniq[inv] == keys).all() and len(np.unique(uniq, axis=0)) == len(uniq)
    assert len(uniq) == len(np.unique(keys, axis=0))
    # a collision (every row hashed alike) still groups exactly
    real = ruled._MIX
    try:
        ruled._MIX = np.uint64(0)
        uniq0, inv0 = ruled._distinct_rows(keys)
    finally:
        ruled._MIX = real
    assert (uniq0[inv0] == keys).all() and len(uniq0) == len(uniq)
