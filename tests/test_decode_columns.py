"""Decode semantics the differential tests cannot see: status bits, option-walk flags, offsets.

Expectations come from how tests/gen/engine_pcaps.py built each frame of
``eth-mixed-us-le.pcap`` (frame numbers follow its construction order).
"""

from __future__ import annotations

import ipaddress
from collections import Counter

import numpy as np
import pytest
from engine_ref import PCAPS

from pcapip.decode import (
    DEFAULT_TOA_KINDS,
    OPT_AFTER_EOL,
    OPT_MSS,
    OPT_SACK,
    OPT_TIMESTAMP,
    OPT_TOA_CANDIDATE,
    OPT_WALK_BROKEN,
    ST_BAD_HEADER,
    ST_FRAGMENT,
    ST_NOT_IP,
    ST_NOT_TCP_UDP,
    ST_PAYLOAD_CUT,
    ST_TRUNCATED,
    Packets,
    decode,
    ip_to_str,
    ips_to_str,
    status_counts,
    toa_mask,
)
from pcapip.sources import open_capture


def decoded(name: str, **kw) -> Packets:
    with open_capture(PCAPS / name) as src:
        batches = list(src)
    assert len(batches) == 1
    return decode(batches[0], **kw)


@pytest.fixture(scope="module", params=["pure", "compiled"])
def mixed(request) -> Packets:
    return decoded("eth-mixed-us-le.pcap", backend=request.param)


def row(p: Packets, frame: int) -> int:
    return int(np.flatnonzero(p.frame == frame)[0])


def test_default_toa_kinds_are_the_documented_set():
    assert frozenset({200, 254, 253, 201, 250, 252, 249, 28}) == DEFAULT_TOA_KINDS
    mask = toa_mask(DEFAULT_TOA_KINDS)
    assert mask.dtype == np.bool_ and mask.shape == (256,)
    assert set(np.flatnonzero(mask).tolist()) == set(DEFAULT_TOA_KINDS)
    with pytest.raises(ValueError):
        toa_mask([256])


@pytest.mark.parametrize(
    "frame,status",
    [
        (9, ST_NOT_IP),  # ARP
        (10, ST_NOT_TCP_UDP),  # ICMP
        (12, ST_FRAGMENT),  # first IPv4 fragment (MF)
        (13, ST_FRAGMENT),  # later IPv4 fragment
        (25, ST_BAD_HEADER),  # IHL 4
        (26, ST_BAD_HEADER),  # TCP data offset 4
        (27, ST_BAD_HEADER),  # UDP length past the IP payload
        (31, 0),  # IPv6 atomic fragment (offset 0, M=0) is a whole packet
        (32, ST_FRAGMENT),  # IPv6 first fragment
        (33, ST_FRAGMENT),  # IPv6 later fragment
        (36, ST_NOT_TCP_UDP),  # ICMPv6
        (37, ST_NOT_IP),  # LLDP
        (38, ST_NOT_IP),  # 802.3 length field
    ],
)
def test_status_of_special_frames(mixed: Packets, frame: int, status: int):
    assert mixed.status[row(mixed, frame)] == status


@pytest.mark.parametrize(
    "frame,flags",
    [
        (1, OPT_TOA_CANDIDATE | OPT_MSS | OPT_SACK),  # MSS, SACK-perm, NOP, WS, TOA 200
        (2, OPT_MSS | OPT_SACK | OPT_TIMESTAMP),
        (3, OPT_TOA_CANDIDATE),  # NOP NOP TOA
        (4, 0),
        (19, OPT_MSS),  # MSS then EOL and zero padding: nothing hidden
        (20, OPT_MSS | OPT_AFTER_EOL | OPT_TOA_CANDIDATE),  # a 254 hidden behind EOL
        (21, OPT_TOA_CANDIDATE | OPT_WALK_BROKEN),  # kind 200 with length 0
        (22, OPT_TIMESTAMP | OPT_SACK | OPT_WALK_BROKEN),  # SACK-perm length runs past the header
        (23, OPT_TOA_CANDIDATE),  # kind 28 length 7
        (24, OPT_TOA_CANDIDATE | OPT_WALK_BROKEN),  # kind 252 in the last byte, no length
        (28, OPT_MSS | OPT_TOA_CANDIDATE),  # IPv6 SYN with a 253
    ],
)
def test_option_walk_flags(mixed: Packets, frame: int, flags: int):
    assert mixed.opt_flags[row(mixed, frame)] == flags


def test_toa_kinds_parameter_changes_candidates():
    only200 = decoded("eth-mixed-us-le.pcap", toa_kinds={200})
    assert only200.opt_flags[row(only200, 20)] & OPT_TOA_CANDIDATE == 0
    assert only200.opt_flags[row(only200, 21)] & OPT_TOA_CANDIDATE
    plus2 = decoded("eth-mixed-us-le.pcap", toa_kinds=DEFAULT_TOA_KINDS | {2})
    assert plus2.opt_flags[row(plus2, 19)] & OPT_TOA_CANDIDATE


def test_layer_offsets_follow_the_headers(mixed: Packets):
    r = row(mixed, 11)  # IPv4 with a 4-byte router-alert option
    assert (mixed.ip_off[r], mixed.l4_off[r]) == (14, 38)
    r = row(mixed, 14)  # one 802.1Q tag
    assert (mixed.ip_off[r], mixed.l4_off[r]) == (18, 38)
    for f in (15, 16):  # two tags: 802.1ad + 802.1Q, legacy 0x9100 + 802.1Q
        assert mixed.ip_off[row(mixed, f)] == 22
    r = row(mixed, 30)  # IPv6 hop-by-hop (8) + dest-opts (8) + routing with one address (24)
    assert mixed.l4_off[r] == 14 + 40 + 8 + 8 + 24
    assert mixed.payload(r) == b"hello over v6"
    r = row(mixed, 34)  # IPv6 AH of 24 bytes
    assert mixed.l4_off[r] == 14 + 40 + 24 and mixed.sport[r] == 40001
    r = row(mixed, 1)
    assert mixed.opt_off[r] == mixed.l4_off[r] + 20
    assert mixed.pay_off[r] == mixed.l4_off[r] + mixed.tcp_hlen[r]


def test_ethernet_padding_and_trailers_are_not_payload(mixed: Packets):
    r = row(mixed, 17)  # RST padded to 60 bytes
    assert mixed.caplen[r] == 60 and mixed.pay_len[r] == 0 and mixed.payload(r) == b""
    r = row(mixed, 18)  # 2 payload bytes then 12 junk bytes past the IP total length
    assert mixed.payload(r) == b"xy" and mixed.pay_len[r] == 2


def test_payload_lengths_of_tcp_and_udp(mixed: Packets):
    r = row(mixed, 4)
    assert mixed.payload(r).startswith(b"PROXY TCP4 203.0.113.7 10.0.0.2 51234 80\r\n")
    r = row(mixed, 8)
    assert mixed.payload(r).startswith(b"\r\n\r\n\x00\r\nQUIT\n") and mixed.pay_len[r] == 31


def test_snap_length_marks_truncation_and_cut_payloads():
    full = decoded("eth-mixed-us-le.pcap")
    cut = decoded("eth-snap80-ns-be.pcap")
    assert np.array_equal(full.origlen, cut.origlen)
    for i in range(len(cut)):
        if full.status[i] != 0 or cut.caplen[i] == full.caplen[i]:
            continue
        if cut.caplen[i] >= full.pay_off[i]:
            # headers complete, payload cut: header fields identical, payload a prefix
            assert cut.status[i] == ST_PAYLOAD_CUT
            assert full.payload(i).startswith(cut.payload(i))
            assert cut.pay_len[i] == full.pay_len[i] > cut.pay_cap[i]
        else:
            assert cut.status[i] == ST_TRUNCATED
    counts = status_counts(cut)
    assert counts["truncated"] >= 1 and counts["payload_cut"] >= 1


def test_status_counts_add_up():
    p = decoded("eth-mixed-us-le.pcap")
    c = status_counts(p)
    assert c["packets"] == len(p) == 38
    assert c["ok"] == int(np.count_nonzero(p.status == 0))
    assert c["not_ip"] == 3 and c["fragment"] == 4 and c["not_tcp_udp"] == 2
    assert c["bad_header"] == 3
    assert c["tcp"] + c["udp"] == c["ok"]  # no cut payloads in the full-size capture
    by_bit = Counter()
    for s in p.status.tolist():
        for bit in range(7):
            if s & (1 << bit):
                by_bit[bit] += 1
    assert sum(by_bit.values()) == c["packets"] - c["ok"]


def test_ip_text_forms():
    mapped = (0, 0xFFFF_0000_0000 | 0xC0000201)
    assert ip_to_str(*mapped) == "192.0.2.1"
    v6 = int(ipaddress.IPv6Address("2001:db8::1"))
    assert ip_to_str(v6 >> 64, v6 & (2**64 - 1)) == "2001:db8::1"
    assert ip_to_str(0, 1) == "::1"
    assert ip_to_str(0, 0xFFFF_0000_0000) == "0.0.0.0"
    hi = np.array([0, v6 >> 64, 0, 0], dtype=np.uint64)
    lo = np.array([mapped[1], v6 & (2**64 - 1), mapped[1], 0], dtype=np.uint64)
    out = ips_to_str(hi, lo)
    assert out.dtype == object and out.tolist() == ["192.0.2.1", "2001:db8::1", "192.0.2.1", "::"]
    assert ips_to_str(hi[:0], lo[:0]).shape == (0,)


def test_addresses_are_ipv4_mapped_columns(mixed: Packets):
    r = row(mixed, 1)
    assert mixed.src_hi[r] == 0 and mixed.src_lo[r] == 0xFFFF_0000_0000 | 0x0A000001
    r = row(mixed, 28)
    assert ip_to_str(mixed.dst_hi[r], mixed.dst_lo[r]) == "2001:db8::2"


def test_toa_253_capture_uses_ip_lengths_not_the_damaged_record_lengths():
    p = decoded("public/toa-253-bad-record-lengths.pcap")
    c = status_counts(p)
    assert c["caplen_gt_origlen"] == 10 and c["ok"] == 10
    # the packet ends where SLL (16) + IP total length say, within the original length;
    # the 16 bytes captured beyond it are never payload
    end = p.pay_off + p.pay_len
    assert (end <= p.origlen).all() and (p.caplen - end >= 16).all()


def test_empty_batch_decodes_to_empty_columns():
    with open_capture(PCAPS / "eth-mixed-us-le.pcap", batch_size=1) as src:
        b = next(iter(src))
    empty = type(b)(
        data=b.data,
        offset=b.offset[:0],
        caplen=b.caplen[:0],
        origlen=b.origlen[:0],
        ts_ns=b.ts_ns[:0],
        linktype=b.linktype[:0],
        iface=b.iface[:0],
        file_offset=b.file_offset[:0],
        first_frame=1,
    )
    for backend in ("pure", "compiled"):
        p = decode(empty, backend=backend)
        assert len(p) == 0 and status_counts(p)["packets"] == 0


def test_frames_outside_the_buffer_are_refused():
    with open_capture(PCAPS / "eth-mixed-us-le.pcap") as src:
        b = next(iter(src))
    b.caplen[0] = b.data.shape[0] + 1
    with pytest.raises(ValueError):
        decode(b, backend="compiled")
