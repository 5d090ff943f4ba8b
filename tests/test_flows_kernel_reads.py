"""The compiled flow loop's own header and TOA reads against the dissectors.

The loop (``pcapip.flows.kernel``) reads two things itself, so most flows never reach
Python: a clean PROXY header in a flow's first segment (v1 TCP4, v2 INET or LOCAL
without TLVs; the row's ``HK_*`` fields, ``F_HEADER == HDR_ROW``) and a clean IPv4 TOA
option (``TS_*``/``TA_*``/``TD_*``). Everything else goes to the rules, which call the
dissectors (``pcapip.dissect``), the authority on both. Whenever the loop read
something itself, the dissector must read the same bytes the same way: checked on every
row the loop hands to the row builder, on every bundled capture and on generated ones.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flowpaths import analysis
from gen import flow_pcaps as gen
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import pcapip.flows.ending as ending
from pcapip.decode import decode
from pcapip.dissect import DEFAULT_REGISTRY, ParseState, dissect_tcp_options, parse_proxy
from pcapip.errors import CaptureError
from pcapip.flows import headers as hdr
from pcapip.flows import layout as L
from pcapip.flows.plainheader import row_header
from pcapip.flows.table import finish_table
from pcapip.flows.tracker import FlowTracker
from pcapip.sources import open_capture

HERE = Path(__file__).resolve().parent
PCAPS = HERE / "pcaps"
CAPTURES = sorted(
    str(p.relative_to(PCAPS)) for d in (PCAPS, PCAPS / "public") for p in d.glob("*.pcap*")
)
TOA_GROUPS = (L.TS_SET, L.TA_SET, L.TD_SET)


@contextmanager
def _rows_seen():
    """Record every row of the flow table handed to the row builder without Python state."""
    seen: list[np.ndarray] = []
    real = ending.compact_plain

    def spy(tab, rows, vocab):
        seen.append(np.concatenate((tab.S[rows], tab.X[rows]), axis=1))
        return real(tab, rows, vocab)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ending, "compact_plain", spy)
        yield seen


def _packets(path: Path):
    """The decoded batches of ``path``, up to any damage (the frames before it count)."""
    try:
        with open_capture(path) as src:
            for batch in src:
                yield decode(batch)
    except CaptureError:
        return


def _frames(path: Path) -> dict[int, tuple[bytes, bytes, int]]:
    """frame number -> (captured payload, captured TCP options, IP version) of TCP packets."""
    out = {}
    for p in _packets(path):
        for i in np.flatnonzero(p.proto == 6).tolist():
            fo = int(p.frame_off[i])
            end = fo + int(p.caplen[i])
            po = fo + int(p.pay_off[i])
            oo = fo + int(p.opt_off[i])
            opts = bytes(p.data[oo : min(oo + int(p.opt_len[i]), end)])
            pay = bytes(p.data[po : po + int(p.pay_cap[i])])
            out[int(p.frame[i])] = (pay, opts, int(p.ipver[i]))
    return out


def check_kernel_reads(path: Path, registry=DEFAULT_REGISTRY) -> tuple[int, int]:
    """Run the flow stage on ``path``; check every header and TOA the loop read against the
    dissectors. Returns (headers, TOA options) checked."""
    tracker = FlowTracker(registry=registry)
    with _rows_seen() as seen:
        for p in _packets(path):
            tracker.feed(p, 0)
        finish_table(tracker, [str(path)])
    frames = _frames(path)
    var_names = tracker._tcp.var_names
    headers = toas = 0
    for M in seen:
        for row in M.tolist():
            if row[L.F_HEADER] == L.HDR_ROW:
                headers += 1
                assert row[L.HK_CAP] == 0
                pay = frames[row[L.HK_FRAME]][0]
                r = parse_proxy(pay)
                assert r.state is ParseState.OK, (pay, r.reason)
                kernel = row_header(row)
                assert kernel.header == r.header, pay
                assert kernel.length == r.length == row[L.HK_LEN], pay
                assert hdr.tlv_text(r.header) == ""
            for g in TOA_GROUPS:
                if not row[g]:
                    continue
                toas += 1
                _, opts, ipver = frames[row[g + L.T_FRAME]]
                res = dissect_tcp_options(opts, registry=registry, ip_version=ipver or None)
                assert hdr.toa_problems(res) == [], opts.hex()
                ip = socket.inet_ntop(socket.AF_INET, row[g + L.T_IP].to_bytes(4, "big"))
                assert (res.client_ip, res.client_port) == (ip, row[g + L.T_PORT]), opts.hex()
                chosen = next(o for o in res.options if o.reached and o.client_ip == ip)
                assert (chosen.kind, chosen.length, chosen.variant.name) == (
                    row[g + L.T_KIND],
                    row[g + L.T_LEN],
                    var_names[row[g + L.T_VAR]],
                ), opts.hex()
    return headers, toas


_totals: dict[str, tuple[int, int]] = {}


@pytest.mark.parametrize("name", CAPTURES)
def test_bundled_capture_kernel_reads_agree_with_dissectors(name: str) -> None:
    _totals[name] = check_kernel_reads(PCAPS / name)


def test_the_bundled_captures_exercise_both_reads() -> None:
    """The check above is not empty: the loop read headers and TOAs itself somewhere."""
    if len(_totals) < len(CAPTURES):
        for name in CAPTURES:
            _totals.setdefault(name, check_kernel_reads(PCAPS / name))
    assert sum(h for h, _ in _totals.values()) >= 5
    assert sum(t for _, t in _totals.values()) >= 5


# ------------------------------------------------------------------ generated traffic
ipv4 = st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, 2**32 - 1))
port = st.integers(0, 65535)
SIG = gen.V2_SIG


def _v1(src: str, dst: str, sp: int, dp: int, how: int) -> bytes:
    parts = ["PROXY", "TCP4", src, dst, str(sp), str(dp)]
    if how == 1:  # a leading zero somewhere
        parts[2] = "0" + parts[2]
    elif how == 2:
        parts[4] = str(sp + 65536)
    elif how == 3:
        parts.insert(2, "")  # a double space
    return (" ".join(parts) + ("\n" if how == 4 else "\r\n")).encode()


def _v2(fam: int, vc: int, src: str, dst: str, sp: int, dp: int, extra: bytes) -> bytes:
    body = (
        ipaddress.IPv4Address(src).packed
        + ipaddress.IPv4Address(dst).packed
        + struct.pack("!HH", sp, dp)
        + extra
    )
    if fam == 0 and vc == 0x20:
        body = extra
    return SIG + bytes([vc, fam]) + struct.pack("!H", len(body)) + body


header = st.one_of(
    st.builds(_v1, ipv4, ipv4, port, port, st.sampled_from([0, 0, 0, 1, 2, 3, 4])),
    st.builds(
        _v2,
        st.sampled_from([0x11, 0x12, 0x00, 0x21, 0x13]),
        st.sampled_from([0x21, 0x21, 0x20, 0x22, 0x11]),
        ipv4,
        ipv4,
        port,
        port,
        st.sampled_from([b"", b"", b"\x04\x00\x00", b"\x01\x00\x02h2"]),
    ),
    st.just(b""),
)
toa_option = st.one_of(
    st.just(b""),
    st.builds(
        lambda k, p, a: bytes([k, 8]) + struct.pack("!H", p) + a,
        st.sampled_from([200, 254, 253, 250, 201, 28]),
        port,
        st.binary(min_size=4, max_size=4),
    ),
    st.builds(lambda k, n, b: bytes([k, n]) + b, st.sampled_from([200, 254]),
              st.integers(0, 12), st.binary(max_size=10)),
)
option_list = st.lists(
    st.one_of(
        st.just(b"\x01"),
        st.just(b"\x02\x04\x05\xb4"),
        st.just(gen.TS_OPT),
        toa_option,
        st.just(b"\x00\x00"),
    ),
    max_size=4,
).map(lambda parts: b"".join(parts)[:36])  # padded to 40 at most
connection = st.tuples(header, option_list, option_list, option_list, st.binary(max_size=6))


def _capture(conns: list, path: Path) -> None:
    cap = gen.Capture(path.name, "")
    for k, (head, syn_opts, ack_opts, data_opts, tail) in enumerate(conns):
        c = gen.Conn(cap, (gen.PROXY1, 40000 + k), (gen.ORIGIN, 80), isn_e=1000 * k, isn_o=7)
        c.handshake(syn_opts=syn_opts, ack_opts=ack_opts)
        c.send(head + b"GET / HTTP/1.1\r\n\r\n" + tail, options=data_opts)
        c.reply(b"HTTP/1.1 200 OK\r\n\r\n")
        c.close()
    gen.write_pcap(path, cap.frames)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(conns=st.lists(connection, min_size=1, max_size=12))
def test_generated_kernel_reads_agree_with_dissectors(tmp_path_factory, conns) -> None:
    path = tmp_path_factory.mktemp("kr") / "g.pcap"
    _capture(conns, path)
    check_kernel_reads(path)
    normal, rules = analysis([path], "normal"), analysis([path], "rules")
    pd.testing.assert_frame_equal(normal.flows, rules.flows)
    pd.testing.assert_frame_equal(normal.findings, rules.findings)


def test_generated_clean_shapes_are_read_by_the_kernel(tmp_path: Path) -> None:
    """The shapes the loop promises to read itself are read there (so the checks above see
    them), and the dissectors agree."""
    toa = bytes([254, 8]) + struct.pack("!H", 8080) + bytes([203, 0, 113, 7])
    conns = [
        (_v1("203.0.113.1", "10.0.0.2", 5001, 80, 0), b"", b"", b"", b""),
        (_v2(0x11, 0x21, "203.0.113.2", "10.0.0.2", 5002, 80, b""), b"", b"", b"", b""),
        (_v2(0x00, 0x20, "0.0.0.0", "0.0.0.0", 0, 0, b""), b"", b"", b"", b""),
        (b"", b"\x02\x04\x05\xb4" + toa, b"\x01\x01" + toa, b"", b""),
    ]
    path = tmp_path / "clean.pcap"
    _capture(conns, path)
    assert check_kernel_reads(path) == (3, 2)


# ------------------------------------------------------------------ the rules' entry
@settings(max_examples=300)
@given(st.one_of(header, st.binary(max_size=40)), st.binary(max_size=8), st.booleans())
def test_rules_parse_is_the_dissector(head: bytes, tail: bytes, final: bool) -> None:
    """``headers.parse`` (what the rules call) is ``parse_proxy`` without its tree; its
    first-byte shortcut says NOT_PROXY exactly when the dissector would (no bytes at all
    are NOT_PROXY to the rules, which never wait for a first byte that never came)."""
    data = head + tail
    assume(data)
    quick, full = hdr.parse(data, final=final), parse_proxy(data, final=final)
    assert quick.tree is None
    assert (quick.state, quick.header, quick.length, quick.codes, quick.reason) == (
        full.state, full.header, full.length, full.codes, full.reason
    ), data
