"""Odd TCP cases for the compiled flow loop, against the per-packet machine and against construction.

Each connection here is built to exercise one rule the compiled loop applies
itself or must hand over: a 4-tuple reused inside one batch, retransmitted
SYNs (same and new ISN), resets during the handshake, packets after the
close, headers that one segment does or does not decide, TOA options that
disagree or come from the wrong side. Every capture is analysed with every
packet handed to the per-packet rules (the test switch ``PCAPIP_CHECK_RULES``)
and the normal way (compiled and its Python twin) at several batch sizes,
and must give the same flows; the ground truth of the construction is
checked on top.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
from flowpaths import analysis
from gen import flow_pcaps as gen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcapip.flows import ending
from pcapip.report.analysis import Analysis

HERE = Path(__file__).resolve().parent


ORIG = (gen.ORIGIN, 8080)
GET = gen.HTTP_GET
OK = gen.HTTP_OK
BATCHES = [1, 2, 3, 7, 64, 65536]


def _run(path: Path, batch: int, way: str = "normal") -> Analysis:
    return analysis([path], way, batch_size=batch)


def _check_paths(path: Path) -> Analysis:
    """Every packet through the rules, and both backends of the normal path, agree at every
    batch size; returns the first."""
    out = None
    for batch in BATCHES:
        ref = _run(path, batch, "rules")
        for backend in ("compiled", "pure"):
            fast = _run(path, batch, backend)
            pd.testing.assert_frame_equal(fast.flows, ref.flows)
            pd.testing.assert_frame_equal(fast.findings, ref.findings)
            assert fast.stats == ref.stats
            assert fast.table.header_frames == ref.table.header_frames
        if batch == 65536:
            out = ref
    assert out is not None
    return out


def _write(tmp_path: Path, cap) -> Path:
    path = tmp_path / cap.name
    gen.write_pcap(path, cap.frames)
    return path


def _rows(a: Analysis) -> list[tuple]:
    c = a.table.columns
    return list(
        zip(c["egress_port"], c["method"], c["client_ip"], c["status"], c["packets"], strict=True)
    )


def _v2_inet6(src: str, dst: str, sport: int, dport: int) -> bytes:
    import ipaddress
    import struct

    body = ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
    body += struct.pack("!HH", sport, dport)
    return gen.V2_SIG + bytes([0x21, 0x21]) + struct.pack("!H", len(body)) + body


def test_port_reuse_inside_one_batch(tmp_path: Path) -> None:
    cap = gen.Capture("reuse.pcap", "")
    e = (gen.PROXY1, 43001)
    c = gen.Conn(cap, e, ORIG, isn_e=10_000, isn_o=20_000).handshake()
    c.send(gen.v1("100.64.7.1", gen.ORIGIN, 7001, 8080) + GET).reply(OK).close()
    # the same 4-tuple at once, closed: a new connection (new ISN)
    c = gen.Conn(cap, e, ORIG, isn_e=50_000, isn_o=60_000).handshake()
    c.send(gen.v2("100.64.7.2", gen.ORIGIN, 7002, 8080) + GET).reply(OK).close()
    # and again while the previous one is still open: a SYN with another ISN starts a new flow
    c = gen.Conn(cap, e, ORIG, isn_e=90_000, isn_o=95_000).handshake()
    c.send(GET)
    c = gen.Conn(cap, e, ORIG, isn_e=190_000, isn_o=195_000).handshake(
        ack_opts=gen.toa200("100.64.7.4", 7004)
    )
    c.send(GET).reply(OK).close()
    a = _check_paths(_write(tmp_path, cap))
    assert _rows(a) == [
        (43001, "ppv1", "100.64.7.1", "ok", 8),
        (43001, "ppv2", "100.64.7.2", "ok", 8),
        (43001, "none", None, "absent", 4),
        (43001, "toa", "100.64.7.4", "ok", 8),
    ]


def test_syn_retransmissions(tmp_path: Path) -> None:
    cap = gen.Capture("synrtx.pcap", "")
    # the same SYN twice (same ISN): one connection
    e = (gen.PROXY1, 43101)
    c = gen.Conn(cap, e, ORIG, isn_e=1000)
    c._e(1000, 0, gen.SYN, options=gen.toa200("100.64.8.1", 8001))
    c.handshake(syn_opts=gen.toa200("100.64.8.1", 8001), ack_opts=gen.toa200("100.64.8.1", 8001))
    c.send(GET).reply(OK).close()
    # a SYN with a new ISN (the client gave up and retried): the first attempt is a flow of its own
    e = (gen.PROXY1, 43102)
    gen.Conn(cap, e, ORIG, isn_e=5000)._e(5000, 0, gen.SYN)
    c = gen.Conn(cap, e, ORIG, isn_e=7000).handshake()
    c.send(gen.v1("100.64.8.2", gen.ORIGIN, 8002, 8080) + GET).reply(OK).close()
    a = _check_paths(_write(tmp_path, cap))
    assert _rows(a) == [
        (43101, "toa", "100.64.8.1", "ok", 9),
        (43102, "none", None, "unanswered", 1),
        (43102, "ppv1", "100.64.8.2", "ok", 8),
    ]
    assert a.stats["syn_recv_sock_toa"] == 1 and a.stats["syn_recv_sock_no_toa"] == 1


def test_resets_during_the_handshake(tmp_path: Path) -> None:
    cap = gen.Capture("rst.pcap", "")
    # the egress side resets instead of completing the handshake
    e = (gen.PROXY1, 43201)
    c = gen.Conn(cap, e, ORIG).handshake(ack=False)
    c._e(c.se, c.so, gen.RST | gen.ACK)
    # the origin refuses the SYN
    e = (gen.PROXY1, 43202)
    c = gen.Conn(cap, e, ORIG)
    c._e(c.isn_e, 0, gen.SYN, options=gen.toa200("100.64.9.2", 9002))
    c._o(0, c.isn_e + 1, gen.RST | gen.ACK)
    # a reset right after the header, before anything else
    e = (gen.PROXY1, 43203)
    c = gen.Conn(cap, e, ORIG).handshake()
    c.send(gen.v2("100.64.9.3", gen.ORIGIN, 9003, 8080) + GET).close(rst=True)
    a = _check_paths(_write(tmp_path, cap))
    assert _rows(a) == [
        (43201, "none", None, "absent", 3),
        (43202, "toa", "100.64.9.2", "ok", 2),
        (43203, "ppv2", "100.64.9.3", "ok", 5),
    ]
    # a failed handshake is not a completed one
    assert a.stats["syn_recv_sock_toa"] == 0 and a.stats["syn_recv_sock_no_toa"] == 1


def test_connection_attempts(tmp_path: Path) -> None:
    """Attempts that never complete say so, and end after 5 s of quiet (capture time):
    retransmissions inside that keep one flow, a SYN after it starts another."""
    cap = gen.Capture("attempts.pcap", "")
    tick = gen.Conn(cap, (gen.PROXY2, 43600), ORIG).handshake()  # keeps the clock going
    a = gen.Conn(cap, (gen.PROXY1, 43601), ORIG)  # SYN, retransmitted 1 s and 3 s later
    b = gen.Conn(cap, (gen.PROXY1, 43602), ORIG)  # SYN-ACK (retransmitted), never acknowledged
    c = gen.Conn(cap, (gen.PROXY1, 43603), ORIG)  # the origin resets the SYN
    d = gen.Conn(cap, (gen.PROXY1, 43604), ORIG)  # a slow handshake: ACK 4 s later, a request
    f = gen.Conn(cap, (gen.PROXY1, 43605), ORIG)  # unanswered, but its SYN names the client
    g = gen.Conn(cap, (gen.PROXY1, 43606), ORIG)  # the same SYN again after 7 s of quiet
    for conn in (a, c, g):
        conn._e(conn.isn_e, 0, gen.SYN)
    b.handshake(ack=False)
    c._o(0, c.isn_e + 1, gen.RST | gen.ACK)
    d.handshake(ack=False)
    f._e(f.isn_e, 0, gen.SYN, options=gen.toa200("100.64.12.5", 12005))
    for sec in range(1, 9):
        cap.t += 1.0
        tick.send(b"x")
        if sec in (1, 3):
            a._e(a.isn_e, 0, gen.SYN)
        if sec == 1:
            b._o(b.isn_o, b.isn_e + 1, gen.SYN | gen.ACK)
        if sec == 4:
            d._e(d.se, d.so, gen.ACK)
            d.send(gen.v1("100.64.12.4", gen.ORIGIN, 12004, 8080) + GET).reply(OK).close()
        if sec == 7:
            g._e(g.isn_e, 0, gen.SYN)
    tick.close()
    path = _write(tmp_path, cap)
    a = _check_paths(path)
    expect = [
        (43600, "none", None, "absent", 14),
        (43601, "none", None, "unanswered", 3),
        (43602, "none", None, "half-open", 3),
        (43603, "none", None, "refused", 2),
        (43604, "ppv1", "100.64.12.4", "ok", 8),
        (43605, "toa", "100.64.12.5", "ok", 1),
    ]
    # the SYN 7 s after its twin finds an attempt past its timeout: a new flow, in one
    # batch as packet by packet (when eviction runs never changes the rows)
    twice = [*expect, (43606, "none", None, "unanswered", 1), (43606, "none", None, "unanswered", 1)]
    assert sorted(_rows(a)) == twice
    assert a.stats["status_unanswered"] == 3 and a.stats["attempts"] == 5
    one = _run(path, 1)
    assert sorted(_rows(one)) == twice
    # no packet is lost: every packet is in exactly one flow
    assert sum(one.table.columns["packets"]) == len(cap.frames)


def test_packets_after_the_close(tmp_path: Path) -> None:
    cap = gen.Capture("late.pcap", "")
    e = (gen.PROXY1, 43301)
    c = gen.Conn(cap, e, ORIG).handshake()
    c.send(gen.v1("100.64.10.1", gen.ORIGIN, 10001, 8080) + GET).reply(OK).close()
    c._e(c.se - 1, c.so, gen.FIN | gen.ACK)  # a retransmitted FIN, 1 ms later: same flow
    # 5 s of another connection, then a late ACK on the closed 4-tuple: the first flow is long
    # over (closed and quiet for more than the 2 s linger), so this is a new, mid-stream flow
    other = gen.Conn(cap, (gen.PROXY2, 43302), ORIG).handshake()
    for _ in range(5):
        cap.t += 1.0
        other.send(b"x")
    c._e(c.se, c.so, gen.ACK)
    other.close()
    path = _write(tmp_path, cap)
    a = _check_paths(path)
    # whether the late ACK joins the old flow depends on when flows are ended: after each
    # batch, so in one batch it still joins, and with one packet per batch the old flow is
    # over before the ACK arrives
    assert _rows(a)[0] == (43301, "ppv1", "100.64.10.1", "ok", 10)
    assert [r[0] for r in _rows(a)] == [43301, 43302]
    one = _rows(_run(path, 1))
    assert one[0] == (43301, "ppv1", "100.64.10.1", "ok", 9)
    assert one[-1] == (43301, "unknown", None, "mid-stream", 1)


def test_headers_one_segment_does_or_does_not_decide(tmp_path: Path) -> None:
    cap = gen.Capture("hdr.pcap", "")
    o = ORIG
    cases = [
        # header and data in one segment (decided by the segment)
        (43401, gen.v1("100.64.11.1", gen.ORIGIN, 11001, 8080) + GET, "ppv1", "ok"),
        # the header alone: whether a second header follows is open until more data comes
        (43402, gen.v1("100.64.11.2", gen.ORIGIN, 11002, 8080), "ppv1", "ok"),
        # data after the header starts with "P": parsed further (it is a POST, not a header)
        (
            43403,
            gen.v2("100.64.11.3", gen.ORIGIN, 11003, 8080) + b"POST / HTTP/1.1\r\n\r\n",
            "ppv2",
            "ok",
        ),
        # v2 LOCAL with data after it
        (43404, gen.v2(None, None, local=True) + GET, "ppv2", "ok"),
        # v2 over IPv6 and v2 with a TLV: not the kernel's shapes, Python reads them
        (43405, _v2_inet6("2001:db8::5", "2001:db8::20", 11005, 8080) + GET, "ppv2", "ok"),
        (
            43406,
            gen.v2("100.64.11.6", gen.ORIGIN, 11006, 8080, tlvs=gen.tlv(0x05, b"u")) + GET,
            "ppv2",
            "ok",
        ),
        # near misses of the v1 shape
        (43407, b"PROXY TCP4 100.64.11.7 198.51.100.20 11007 08080\r\n" + GET, "ppv1", "malformed"),
        (43408, b"PROXY TCP4 100.64.11.8 198.51.100.20 11008 65536\r\n" + GET, "ppv1", "malformed"),
        (43409, b"PROXY UNKNOWN\r\n" + GET, "ppv1", "ok"),
        (43410, b"PROXY TCP4 100.64.11.10 198.51.100.20 11010 8080\n" + GET, "ppv1", "malformed"),
        # not a header at all, though it starts like one
        (43411, b"PROXZ\r\n" + GET, "none", "absent"),
        (43412, b"\r\n\r\nGET / HTTP/1.0\r\n\r\n", "none", "absent"),
    ]
    for port, data, _, _ in cases:
        c = gen.Conn(cap, (gen.PROXY1, port), o).handshake()
        c.send(data)
        if port == 43402:
            c.send(GET)
        c.reply(OK).close()
    # a header split in two segments, the second retransmitted
    h = gen.v1("100.64.11.20", gen.ORIGIN, 11020, 8080) + GET
    c = gen.Conn(cap, (gen.PROXY1, 43420), o).handshake()
    c.send(h[:9], at=0).send(h[9:], at=9).send(h[9:], at=9).reply(OK).close()
    a = _check_paths(_write(tmp_path, cap))
    got = {(p, m, s) for p, m, _, s, _ in _rows(a)}
    for port, _, method, status in cases:
        assert (port, method, status) in got
    assert (43420, "ppv1", "ok") in got


def test_toa_cases_the_loop_hands_over(tmp_path: Path) -> None:
    cap = gen.Capture("toa.pcap", "")
    t = gen.toa200
    # SYN and handshake ACK name different clients
    c = gen.Conn(cap, (gen.PROXY1, 43501), ORIG).handshake(
        syn_opts=t("100.64.12.1", 1), ack_opts=t("100.64.12.99", 1)
    )
    c.send(GET).reply(OK).close()
    # a TOA-kind option from the origin
    c = gen.Conn(cap, (gen.PROXY1, 43502), ORIG).handshake(synack_opts=t("100.64.12.2", 2))
    c.send(GET).reply(OK).close()
    # two TOA options in one segment (not a clean shape)
    c = gen.Conn(cap, (gen.PROXY1, 43503), ORIG).handshake(
        ack_opts=t("100.64.12.3", 3) + t("100.64.12.33", 3)
    )
    c.send(GET).reply(OK).close()
    # TOA only in data, after the handshake
    c = gen.Conn(cap, (gen.PROXY1, 43504), ORIG).handshake()
    c.send(GET, options=t("100.64.12.4", 4)).reply(OK).close()
    # the handshake ACK's options cut by the snap length
    c = gen.Conn(cap, (gen.PROXY1, 43505), ORIG)
    c._e(c.isn_e, 0, gen.SYN)
    c._o(c.isn_o, c.isn_e + 1, gen.SYN | gen.ACK)
    c._e(c.se, c.so, gen.ACK, options=t("100.64.12.5", 5), snap=14 + 20 + 20 + 4)
    c.send(GET).reply(OK).close()
    # mid-stream: TOA in a data segment decides the egress side
    c = gen.Conn(cap, (gen.PROXY2, 43506), ORIG)
    c.send(GET, at=300, options=t("100.64.12.6", 6)).reply(OK)
    a = _check_paths(_write(tmp_path, cap))
    codes = dict(zip(a.flows["egress_port"], a.flows["findings"].astype(str), strict=True))
    assert "toa.inconsistent" in codes[43501]
    assert "toa.from_origin" in codes[43502]
    assert "toa.after_handshake" in codes[43504]
    assert "capture.truncated" in codes[43505]
    assert "flow.mid_stream" in codes[43506]


def test_toa_behind_a_broken_option_of_a_bad_length_or_cut_by_the_capture(tmp_path: Path) -> None:
    """What a receiving module can and cannot read of a TOA the walk never reaches, one with
    a length below 2, and one the snap length cut: each is said, none is silent, and a cut
    is the capture's doing (incomplete), not the sender's (malformed)."""
    cap = gen.Capture("toa-walk.pcap", "")
    t = gen.toa200
    pad = b"\x00\x00"
    cases = {
        43601: b"\x05\x00" + t("100.64.13.1", 1) + pad,  # SACK of length 0, then TOA
        43602: b"\x05\x01" + t("100.64.13.2", 2) + pad,  # ... of length 1
        43603: b"\x05\xff" + t("100.64.13.3", 3) + pad,  # ... running past the header
        43604: b"\xc8\x00" + bytes(10),  # a TOA kind of length 0
        43605: b"\xc8\x01" + bytes(10),  # ... of length 1
    }
    for port, opts in cases.items():
        c = gen.Conn(cap, (gen.PROXY1, port), ORIG).handshake(ack_opts=opts)
        c.send(GET).reply(OK).close()
    # the snap length cuts the handshake ACK inside its TOA (MSS, then 2 of TOA's 8 bytes)
    c = gen.Conn(cap, (gen.PROXY1, 43606), ORIG)
    c._e(c.isn_e, 0, gen.SYN)
    c._o(c.isn_o, c.isn_e + 1, gen.SYN | gen.ACK)
    cut = b"\x02\x04\x05\xb4" + t("100.64.13.6", 6)
    c._e(c.se, c.so, gen.ACK, options=cut, snap=14 + 20 + 20 + 6)
    c.send(GET).reply(OK).close()
    a = _check_paths(_write(tmp_path, cap))
    f = a.flows.set_index("egress_port")
    codes = {p: str(f.at[p, "findings"]).split(";") for p in f.index}
    for port in (43601, 43602, 43603):
        assert codes[port] == ["toa.unreachable"], port
        assert (f.at[port, "method"], f.at[port, "status"]) == ("none", "absent")
    for port in (43604, 43605):
        assert codes[port] == ["toa.malformed"], port
        assert (f.at[port, "method"], f.at[port, "status"]) == ("toa", "malformed")
    assert codes[43606] == ["capture.truncated"]
    assert (f.at[43606, "method"], f.at[43606, "status"]) == ("toa", "incomplete")
    assert pd.isna(f.at[43606, "client_ip"])


def test_proxy_headers_a_receiver_accepts_with_what_is_odd_in_them(tmp_path: Path) -> None:
    """Valid headers the spec's receiver accepts are not called malformed, and what is odd
    in them is said (proxy.oddity), on every path; a stream that ends on a few bytes that
    only start like a signature carried data, not a second header."""
    import struct

    cap = gen.Capture("proxy-odd.pcap", "")
    unspec_local = gen.V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", 12) + bytes(range(1, 13))
    unix = gen.V2_SIG + bytes([0x21, 0x31]) + struct.pack("!H", 216)
    unix += b"/run/src.sock".ljust(108, b"\0") + b"/run/dst.sock".ljust(108, b"\0")
    authority = gen.v2("100.64.14.5", gen.ORIGIN, 14005, 8080, tlvs=gen.tlv(0x02, b"\xff\xfe"))
    crc5 = gen.v2("100.64.14.7", gen.ORIGIN, 14007, 8080, tlvs=gen.tlv(0x03, b"12345"))
    first = {
        43701: unspec_local + GET,
        43702: gen.v1("100.64.14.2", gen.ORIGIN, 14002, 8080),
        43703: gen.v2("100.64.14.3", gen.ORIGIN, 14003, 8080),
        43704: unix + GET,
        43705: authority + GET,
        43706: gen.v2("100.64.14.6", gen.ORIGIN, 14006, 8080, dgram=True) + GET,
        43707: crc5 + GET,
        43708: b"PROXY TCP6 ::ffff:100.64.14.8 ::1 14008 8080\r\n" + GET,
    }
    after = {43702: b"\r\n", 43703: b"\r\n\r\n"}  # a stream that ends on these
    for port, data in first.items():
        c = gen.Conn(cap, (gen.PROXY1, port), ORIG).handshake().send(data)
        if port in after:
            c.send(after[port])
        c.reply(OK).close()
    a = _check_paths(_write(tmp_path, cap))
    f = a.flows.set_index("egress_port")
    codes = {p: set(str(f.at[p, "findings"]).split(";")) - {"nan", ""} for p in f.index}
    status = {p: (f.at[p, "method"], f.at[p, "status"]) for p in f.index}
    assert status[43701] == ("ppv2", "ok") and codes[43701] == {"proxy.local"}
    assert codes[43702] == set() and codes[43703] == set()  # no proxy.stacked
    assert status[43704] == ("ppv2", "ok") and codes[43704] == {"proxy.no_address"}
    assert pd.isna(f.at[43704, "client_ip"])
    for port in (43705, 43706, 43708):
        assert status[port][1] == "ok" and codes[port] == {"proxy.oddity"}, port
    assert str(f.at[43707, "tlvs"]) == "crc32c=unchecked"
    assert codes[43707] == {"proxy.v2.malformed"}
    odd = a.findings.set_index("code").loc["proxy.oddity", "message"].tolist()
    assert any("DGRAM" in m and "TCP" in m for m in odd), odd
    assert any("UTF-8" in m for m in odd), odd


def test_udp_datagrams_without_a_header_before_the_first_one_are_said(tmp_path: Path) -> None:
    """The spec parses every datagram on its own: those from the egress before its first
    header lacked one too."""
    cap = gen.Capture("udp-first.pcap", "")
    e, o = (gen.PROXY1, 43801), (gen.ORIGIN, 5353)
    for payload in (b"bare-1", b"bare-2", gen.v2("100.64.15.1", gen.ORIGIN, 15001, 5353,
                                                  dgram=True) + b"q"):
        cap.add(gen.udp_datagram(e[0], o[0], e[1], o[1], payload))
        cap.add(gen.udp_datagram(o[0], e[0], o[1], e[1], b"answer"))
    a = _check_paths(_write(tmp_path, cap))
    row = a.flows.iloc[0]
    assert (row["method"], row["status"], row["client_ip"]) == ("ppv2", "ok", "100.64.15.1")
    assert str(row["findings"]) == "udp.header_missing"
    first = a.findings.set_index("code").loc["udp.header_missing"]
    assert int(first["packet"]) == 1  # the first datagram without one


def test_a_first_segment_the_capture_lost_is_a_gap_not_an_absent_header(tmp_path: Path) -> None:
    """The segment holding the header (and the request) is missing and the egress only
    closes after it: its FIN's sequence number proves bytes went by, so the question is
    unanswered (incomplete, capture.gap), not "no header sent" (absent)."""
    cap = gen.Capture("lost-start.pcap", "")
    lost = gen.v1("100.64.16.1", gen.ORIGIN, 16001, 8080) + GET
    c = gen.Conn(cap, (gen.PROXY1, 43901), ORIG).handshake()
    c.se += len(lost)  # (sent, not captured)
    c.reply(OK).close()
    # the same connection with nothing sent before the FIN: absent, as before
    gen.Conn(cap, (gen.PROXY1, 43902), ORIG).handshake().reply(OK).close()
    a = _check_paths(_write(tmp_path, cap))
    f = a.flows.set_index("egress_port")
    assert (f.at[43901, "method"], f.at[43901, "status"]) == ("none", "incomplete")
    assert str(f.at[43901, "findings"]) == "capture.gap"
    assert (f.at[43902, "method"], f.at[43902, "status"]) == ("none", "absent")


def test_compacting_in_many_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ended flows become rows in blocks; block boundaries change nothing."""
    path = HERE / "pcaps" / "flow-proxy-misc.pcap"
    ref = _run(path, 65536, "rules")
    monkeypatch.setattr(ending, "COMPACT_ROWS", 1)
    for backend in ("compiled", "pure"):
        for batch in (1, 5, 65536):
            fast = _run(path, batch, backend)
            assert fast.to_csv() == ref.to_csv()
            pd.testing.assert_frame_equal(fast.findings, ref.findings)


_OCTET = st.one_of(
    st.integers(0, 255).map(str),
    st.sampled_from(["00", "01", "256", "999", "1000", "", "-1", " 1"]),
)
_PORT = st.one_of(
    st.integers(0, 65535).map(str),
    st.sampled_from(["00", "065535", "65536", "123456", "", "+5"]),
)


@st.composite
def _v1_lines(draw) -> bytes:
    ip = st.lists(_OCTET, min_size=4, max_size=4).map(".".join)
    proto = draw(st.sampled_from(["TCP4", "TCP4", "TCP4", "TCP6", "tcp4", "UNKNOWN"]))
    sep = draw(st.sampled_from([" ", " ", " ", "  "]))
    end = draw(st.sampled_from(["\r\n", "\r\n", "\r\n", "\n", "\r", ""]))
    line = f"PROXY {proto}{sep}{draw(ip)} {draw(ip)} {draw(_PORT)} {draw(_PORT)}{end}"
    after = draw(st.sampled_from([b"GET / HTTP/1.1\r\n\r\n", b"", b"PROXY TCP4", b"\r\nx", b"Px"]))
    return line.encode() + after


@st.composite
def _v2_headers(draw) -> bytes:
    vc = draw(st.sampled_from([0x21, 0x21, 0x20, 0x22, 0x11]))
    fam = draw(st.sampled_from([0x11, 0x12, 0x00, 0x21, 0x13]))
    body = bytes(draw(st.lists(st.integers(0, 255), min_size=12, max_size=12)))
    ln = draw(st.sampled_from([12, 12, 0, 11, 13, 40]))
    after = draw(st.sampled_from([b"GET / HTTP/1.1\r\n\r\n", b"", b"P", b"\r"]))
    return gen.V2_SIG + bytes([vc, fam]) + ln.to_bytes(2, "big") + body[:ln] + after


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    headers=st.lists(st.one_of(_v1_lines(), _v2_headers()), min_size=1, max_size=12),
    seed=st.integers(0, 2**16),
)
def test_first_segments_the_loop_reads_itself(tmp_path_factory, headers, seed) -> None:
    """Whatever a first segment holds, the loop's own reading of clean headers (and its
    refusal of everything else) gives what the dissectors give."""
    rng = random.Random(seed)
    cap = gen.Capture("fuzz.pcap", "")
    for k, data in enumerate(headers):
        conn = gen.Conn(cap, (gen.PROXY1, 44000 + k), ORIG, isn_e=rng.randrange(1 << 32))
        conn.handshake().send(data)
        if rng.random() < 0.5:
            conn.reply(OK)
        conn.close(rst=rng.random() < 0.3)
    path = tmp_path_factory.mktemp("fz") / "fuzz.pcap"
    gen.write_pcap(path, cap.frames)
    for batch in (1, 65536):
        ref = _run(path, batch, "rules")
        for backend in ("compiled", "pure"):
            fast = _run(path, batch, backend)
            pd.testing.assert_frame_equal(fast.flows, ref.flows)
            pd.testing.assert_frame_equal(fast.findings, ref.findings)
