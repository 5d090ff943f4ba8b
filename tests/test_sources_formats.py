"""Capture sources against independent readers: every frame, byte for byte.

Frame bytes and link types come from dpkt (pcap) or scapy (pcapng);
timestamps, captured/original lengths and interface ids from tshark, whose
``frame.time_epoch`` keeps nanoseconds.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from engine_ref import (
    PCAPS,
    PUBLIC,
    capture_files,
    epoch_to_ns,
    is_pcapng,
    packet_rows,
    read_capture,
    reference_frames,
    tshark_rows,
)
from tools import require_tool

from pcapip.sources import open_capture
from pcapip.sources.linktypes import LT_RECORD

CAPTURES = capture_files()
IDS = [p.name for p in CAPTURES]


def test_the_capture_set_covers_every_format_and_link_type():
    """Guard the test matrix itself: formats, byte orders, resolutions, link types."""
    names = {p.name for p in CAPTURES}
    for required in (
        "eth-mixed-us-le.pcap",
        "eth-snap80-ns-be.pcap",
        "raw101-ns-be.pcap",
        "sll-us-be.pcap",
        "sll2-ns-le.pcap",
        "null-le.pcap",
        "loop-be.pcap",
        "multi-section.pcapng",
        "all-links-be.pcapng",
        "eth-mixed-us-le.pcap.gz",
        "loopback-tcpdump.pcap",
        "loopback-dumpcap.pcapng",
        "toa-253-bad-record-lengths.pcap",
    ):
        assert required in names
    seen = set()
    for p in CAPTURES:
        r = read_capture(p)
        seen.update(int(x) for x in np.unique(r.linktype))
    assert {0, 1, 12, 14, 101, 108, 113, 228, 229, 276} <= seen


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_frames_match_dpkt_or_scapy(path: Path):
    ours = read_capture(path)
    ref = reference_frames(path)  # (packets only: they skip pcapng custom blocks)
    packets = [i for i in range(len(ours.frames)) if ours.linktype[i] != LT_RECORD]
    assert len(packets) == len(ref)
    for i, theirs in zip(packets, ref, strict=True):
        assert ours.frames[i] == theirs.data, f"frame {i + 1} bytes differ"
        if theirs.linktype is not None:
            assert ours.linktype[i] == theirs.linktype, f"frame {i + 1} link type"
        assert ours.caplen[i] == len(theirs.data)
        if theirs.origlen is not None:
            assert ours.origlen[i] == theirs.origlen


@pytest.mark.system
@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_times_lengths_interfaces_match_tshark(path: Path):
    require_tool("tshark")
    ours = read_capture(path)
    rows = packet_rows(path)
    assert len(rows) == len(ours.frames)
    for i, row in enumerate(rows):
        assert int(row["frame.number"]) == i + 1
        assert ours.ts_ns[i] == epoch_to_ns(row["frame.time_epoch"]), f"frame {i + 1} time"
        assert ours.caplen[i] == int(row["frame.cap_len"])
        assert ours.origlen[i] == int(row["frame.len"])
    if is_pcapng(path):
        # tshark shows the id local to the section; pcapip numbers IDBs file-wide
        with open_capture(path) as src:
            list(src)
            ifaces = src.interfaces
        first = {}
        for itf in ifaces:
            first.setdefault(itf.section, itf.index)
        # (a custom block has no interface: tshark leaves the field empty)
        local = ["" if x < 0 else str(int(x) - first[ifaces[int(x)].section]) for x in ours.iface]
        assert [r["frame.interface_id"] for r in rows] == local
    else:
        assert not ours.iface.any()


@pytest.mark.system
def test_pcapng_link_types_match_tshark():
    """tshark's encapsulation per frame, translated with a table learned from pcap files.

    Each single-link-type pcap says its DLT (read by dpkt) and tshark says its
    encapsulation, which gives the DLT -> encapsulation map used to check every
    frame of the pcapng files, several sections and interfaces included.
    """
    require_tool("tshark")
    import dpkt

    to_encap: dict[int, int] = {}
    for p in CAPTURES:
        if is_pcapng(p) or p.suffix == ".gz":
            continue
        with open(p, "rb") as f:
            dlt = dpkt.pcap.Reader(f).datalink()
        encaps = {r["frame.encap_type"] for r in packet_rows(p)}
        if len(encaps) == 1:
            to_encap[dlt] = int(encaps.pop())
    checked = 0
    for p in CAPTURES:
        if not is_pcapng(p):
            continue
        ours = read_capture(p)
        rows = packet_rows(p)
        for i, row in enumerate(rows):
            if ours.linktype[i] == LT_RECORD:  # a custom block: no packet, no encapsulation
                assert row["frame.encap_type"] == row["frame.interface_id"] == "", (p.name, i + 1)
                continue
            assert to_encap[int(ours.linktype[i])] == int(row["frame.encap_type"]), (p.name, i + 1)
            checked += 1
    assert checked > 40


def test_pcapng_sections_interfaces_and_block_kinds():
    with open_capture(PCAPS / "multi-section.pcapng") as src:
        frames = sum(len(b) for b in src)
        assert src.format == "pcapng"
        assert [s["byte_order"] for s in src.sections] == ["little", "big", "little"]
        assert [i.linktype for i in src.interfaces] == [1, 101, 276, 113, 1, 0]
        assert [i.section for i in src.interfaces] == [0, 0, 0, 1, 1, 2]
        assert [i.ts_resolution for i in src.interfaces] == [
            "1e-6",
            "1e-9",
            "2^-20",
            "1e-3",
            "1e-9",
            "1e-6",
        ]
        assert src.interfaces[3].ts_offset == 3600
        assert src.interfaces[0].name == "eth0"
        assert any("simple packet blocks carry no timestamp" in str(w) for w in src.warnings)
    # EPB x8, SPB x1, PB x2 (one per section 1 and 2) and the custom block, which holds no
    # packet but is numbered as a frame (frame 4), as tshark numbers it; NRB, ISB and the
    # unknown block skipped
    assert frames == 12
    require_tool("tshark")
    assert frames == len(tshark_rows(str(PCAPS / "multi-section.pcapng")))


def test_frame_numbers_are_one_based_across_batches():
    r = read_capture(PCAPS / "eth-mixed-us-le.pcap", batch_size=5)
    assert r.first_frames == list(range(1, len(r.frames) + 1, 5))


@pytest.mark.parametrize(
    "path",
    [p for p in CAPTURES if p.suffix != ".gz"][:40],
    ids=[p.name for p in CAPTURES if p.suffix != ".gz"][:40],
)
def test_tiny_chunks_and_batches_give_the_same_frames(path: Path):
    """Records straddling buffer ends, and buffers smaller than a record, change nothing."""
    a = read_capture(path)
    b = read_capture(path, chunk_size=4096, batch_size=3)
    assert a.frames == b.frames
    for name in ("caplen", "origlen", "ts_ns", "linktype", "iface", "file_offset"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_record_bigger_than_the_buffer(tmp_path: Path):
    from gen.engine_pcaps import ng_epb, ng_idb, ng_shb, pcap_bytes

    big = bytes(range(256)) * 70  # 17920 bytes, a jumbo frame > the 4 KiB chunk
    frames = [(10**18 + i, big[: 17920 - i]) for i in range(3)]
    (tmp_path / "big.pcap").write_bytes(pcap_bytes(frames, linktype=1))
    ng = ng_shb("<") + ng_idb("<", 1) + b"".join(ng_epb("<", 0, t, d) for t, d in frames)
    (tmp_path / "big.pcapng").write_bytes(ng)
    for name in ("big.pcap", "big.pcapng"):
        r = read_capture(tmp_path / name, chunk_size=4096)
        assert r.frames == [d for _, d in frames]


def test_format_comes_from_the_magic_not_the_name(tmp_path: Path):
    src = PCAPS / "multi-section.pcapng"
    gz_named_pcap = tmp_path / "capture.pcap"
    gz_named_pcap.write_bytes(gzip.compress(src.read_bytes()))
    plain_named_gz = tmp_path / "capture.pcap.gz"
    shutil.copyfile(PCAPS / "eth-mixed-us-le.pcap", plain_named_gz)
    no_suffix = tmp_path / "capture"
    shutil.copyfile(src, no_suffix)
    with open_capture(gz_named_pcap) as s:
        assert (s.format, s.compressed) == ("pcapng", True)
        assert read_capture(gz_named_pcap).frames == read_capture(src).frames
    with open_capture(plain_named_gz) as s:
        assert (s.format, s.compressed) == ("pcap", False)
    with open_capture(no_suffix) as s:
        assert s.format == "pcapng"


def test_gzip_reads_like_the_plain_file():
    a = read_capture(PCAPS / "eth-mixed-us-le.pcap")
    b = read_capture(PCAPS / "eth-mixed-us-le.pcap.gz")
    assert a.frames == b.frames and np.array_equal(a.ts_ns, b.ts_ns)
    assert np.array_equal(a.file_offset, b.file_offset)


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_zstd_and_lz4_read_like_the_plain_file_and_as_tshark_reads_them(
    tmp_path: Path, codec: str
) -> None:
    """A capture compressed by the ``zstd`` or ``lz4`` tool (as a rotation script leaves
    it; Wireshark reads both directly) reads like the plain file: every frame, time and
    offset; and tshark reads the same frames from the same compressed file."""
    tool = require_tool(codec)
    require_tool("tshark")
    for name in ("eth-mixed-us-le.pcap", "multi-section.pcapng", "troubleshooting.pcap"):
        src = PCAPS / name
        out = tmp_path / f"{name}.{codec[:3]}"
        out.write_bytes(subprocess.run([tool, "-q", "-c", str(src)], capture_output=True,
                                       check=True).stdout)
        a, b = read_capture(src), read_capture(out)
        assert a.frames == b.frames and np.array_equal(a.ts_ns, b.ts_ns), name
        assert np.array_equal(a.file_offset, b.file_offset)
        with open_capture(out) as s:
            assert s.compressed and f", {codec}," in repr(s)
        assert len(tshark_rows(str(out))) == len(b.frames), name


def test_zstd_skippable_frames_are_skipped_as_the_zstd_tool_skips_them(tmp_path: Path) -> None:
    """zstd's skippable frames (a seek table, metadata) before, between and after the data
    frames: pcapip reads the bytes ``zstd -d`` gives, also when the file starts with one
    (tshark, which sniffs only a data frame's magic, refuses that file)."""
    tool = require_tool("zstd")
    src = PCAPS / "troubleshooting.pcap"
    data = src.read_bytes()

    def zstd(part: bytes) -> bytes:
        return subprocess.run([tool, "-q", "-c"], input=part, capture_output=True,
                              check=True).stdout

    for k, first in ((0x5E, True), (0x50, False)):
        skip = struct.pack("<II", 0x184D2A00 | k, 9) + b"seektable"
        out = tmp_path / f"skip{k:x}.pcap.zst"
        out.write_bytes((skip if first else b"") + zstd(data[:5000]) + skip
                        + zstd(data[5000:]) + skip)
        unpacked = subprocess.run([tool, "-q", "-d", "-c", str(out)], capture_output=True,
                                  check=True).stdout
        assert unpacked == data
        a, b = read_capture(src), read_capture(out)
        assert a.frames == b.frames and np.array_equal(a.ts_ns, b.ts_ns), hex(k)
        assert np.array_equal(a.file_offset, b.file_offset)


def test_pcap_header_details():
    with open_capture(PCAPS / "eth-snap80-ns-be.pcap") as src:
        assert src.snaplen == 80 and src.linktype == 1
        assert src.interfaces[0].ts_resolution == "1e-9"
        r = list(src)
    caps = np.concatenate([b.caplen for b in r])
    origs = np.concatenate([b.origlen for b in r])
    assert caps.max() == 80 and (origs > caps).any()


def test_public_captures_read_without_error():
    for name in (
        "ndpi-haproxy.pcap",
        "toa-252-alibaba-vpc.pcap",
        "toa-253-bad-record-lengths.pcap",
        "toa-254-250-alibaba-slb.pcap",
    ):
        with open_capture(PUBLIC / name) as src:
            assert sum(len(b) for b in src) > 0


def test_caplen_larger_than_origlen_is_kept_and_reported():
    """toa-253: every record claims 16 captured bytes more than were on the wire."""
    path = PUBLIC / "toa-253-bad-record-lengths.pcap"
    with open_capture(path) as src:
        batches = list(src)
        warnings = src.warnings
    caplen = np.concatenate([b.caplen for b in batches])
    origlen = np.concatenate([b.origlen for b in batches])
    assert (caplen - origlen == 16).all()
    assert len(warnings) == 1
    text = str(warnings[0])
    assert text.startswith(f"{path}, packet 1, byte offset 24: captured length 100 is larger than the length on the wire 84")
    assert text.endswith("(and 9 more packets like it)")
    assert (warnings[0].packet, warnings[0].offset, warnings[0].more) == (1, 24, 9)


def test_pcapng_warnings_name_the_absolute_offset(tmp_path: Path):
    """A malformed IDB option list deep in the file is reported at the IDB's file offset."""
    from gen.engine_pcaps import ng_block, ng_epb, ng_idb, ng_shb

    frame = bytes(range(60))
    head = ng_shb("<") + ng_idb("<", 1) + b"".join(ng_epb("<", 0, i, frame) for i in range(200))
    # option 2 (if_name) claiming 40 bytes inside a block that holds 8
    bad_idb = ng_block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 2, 40) + b"eth1", "<")
    (tmp_path / "w.pcapng").write_bytes(head + ng_shb("<") + bad_idb + ng_epb("<", 0, 7, frame))
    with open_capture(tmp_path / "w.pcapng", chunk_size=4096) as src:
        assert sum(len(b) for b in src) == 201
        warnings = src.warnings
    idb_offset = len(head) + len(ng_shb("<"))
    assert [str(w) for w in warnings] == [
        f"{tmp_path / 'w.pcapng'}, byte offset {idb_offset}: "
        "interface description block 1 has malformed options (ignored)"
    ]


def test_modified_pcap_with_24_byte_record_headers(tmp_path: Path):
    """Kuznetzov's "modified" pcap (magic a1b2cd34): 8 extra bytes per record header."""
    frames = [bytes([i]) * (60 + i) for i in range(5)]
    out = [struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 262144, 1)]
    for i, f in enumerate(frames):
        out.append(struct.pack("<IIII", 1_700_000_000 + i, 250_000, len(f), len(f) + 4))
        out.append(struct.pack("<iHBx", 2, 0x0800, 0) + f)  # ifindex, protocol, pkt type, pad
    (tmp_path / "mod.pcap").write_bytes(b"".join(out))
    r = read_capture(tmp_path / "mod.pcap")
    assert r.frames == frames
    assert r.ts_ns.tolist() == [(1_700_000_000 + i) * 10**9 + 250_000_000 for i in range(5)]
    assert r.origlen.tolist() == [len(f) + 4 for f in frames]


def _records_capture(path: Path) -> None:
    """A pcapng whose packets have custom blocks (both kinds) and a systemd journal entry
    between them, the second packet carrying a TOA kind with a length no variant has."""
    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    def syn(sport: int, opts: bytes = b"") -> bytes:
        tcp = struct.pack(">HHIIBBHHH", sport, 80, 1, 0, (5 + len(opts) // 4) << 4, 2, 65535,
                          0, 0) + opts
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                         bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        data = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp
        us = 1_700_000_000_000_000 + sport
        return block(6, struct.pack("<IIIII", 0, us >> 32, us & 0xFFFFFFFF, len(data),
                                    len(data)) + data)

    journal = b"__CURSOR=s=1\n__REALTIME_TIMESTAMP=1700000000000500\nMESSAGE=hello pcapip\n"
    path.write_bytes(
        block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
        + block(1, struct.pack("<HHI", 1, 0, 0))
        + syn(1000)
        + block(0x0BAD, struct.pack("<I", 32473) + b"note")
        + block(9, journal)
        + block(0x40000BAD, struct.pack("<I", 32473) + b"x")
        + syn(2000, bytes([254, 3, 0, 1]))
    )


def test_records_without_packets_keep_wiresharks_frame_numbers(tmp_path: Path) -> None:
    """Wireshark numbers a pcapng custom block or journal entry as a frame; pcapip numbers it
    too (a frame of link type LT_RECORD), so the packet a finding names is the frame an
    operator opens in Wireshark under that number."""
    require_tool("tshark")
    import pcapip

    path = tmp_path / "records.pcapng"
    _records_capture(path)
    ours = read_capture(path)
    rows = tshark_rows(str(path))
    assert len(ours.frames) == len(rows) == 5
    assert [lt == LT_RECORD for lt in ours.linktype.tolist()] == [
        r["frame.interface_id"] == "" for r in rows
    ] == [False, True, True, True, False]
    assert ours.caplen.tolist() == [int(r["frame.cap_len"]) for r in rows]
    (finding,) = pcapip.analyze(str(path)).table.findings
    # a custom block too short to hold its enterprise number is an empty frame, no more
    short = tmp_path / "short.pcapng"
    whole = path.read_bytes()
    cb = whole.index(b"\xad\x0b\x00\x00")
    short.write_bytes(whole[:cb] + bytes.fromhex("ad0b0000 0c000000 0c000000") + whole[cb:])
    assert read_capture(short).caplen.tolist() == [54, 0, *ours.caplen.tolist()[1:]]
    r = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.srcport == 2000", "-T", "fields",
                        "-e", "frame.number"], capture_output=True, text=True, timeout=60)
    assert finding.code == "toa.malformed" and finding.frame == int(r.stdout) == 5


@pytest.mark.parametrize("tsresol", [10, 0x80 | 33])  # (finer: past 2**64 ticks by 2023)
def test_pcapng_fine_resolutions_past_2_63_ticks_read_as_tshark_reads_them(
    tmp_path: Path, tsresol: int
) -> None:
    """if_tsresol 1e-10 or 2^-33 puts a 2023 time past 2**63 ticks: the spec's timestamp is
    unsigned 64-bit, so the time is still exact, and a connection stays one flow (it was
    clamped to 2262 and cut into three)."""
    require_tool("tshark")
    from gen import engine_pcaps as g

    from pcapip import analyze

    e = "<"
    t0 = 1_700_000_000_123_456_789
    from scapy.layers.l2 import Ether

    frames = [bytes(Ether(src=g.MAC_C, dst=g.MAC_S) / p) for p in g.handshake4()]
    blob = g.ng_shb(e) + g.ng_idb(e, 1, opts=[(9, bytes([tsresol]))])
    for k, f in enumerate(frames):
        blob += g.ng_epb(e, 0, g.ticks(t0 + k * 1_000_003, tsresol), f)
    path = tmp_path / "fine.pcapng"
    path.write_bytes(blob)
    assert g.ticks(t0, tsresol) >= 2**63
    ours = read_capture(path)
    rows = packet_rows(path)
    assert [int(x) for x in ours.ts_ns] == [epoch_to_ns(r["frame.time_epoch"]) for r in rows]
    assert abs(int(ours.ts_ns[0]) - t0) < 1000
    a = analyze([str(path)])
    assert len(a.table) == 1 and a.flows["packets"].tolist() == [len(frames)]
    assert a.flows["status"].tolist() == ["ok"]


def test_a_time_past_what_nanoseconds_hold_is_said_with_its_packet(tmp_path: Path) -> None:
    """A damaged block whose microsecond time is past 2262 is timed at the limit, and said:
    the connection around it splits, which must not go unexplained."""
    from gen import engine_pcaps as g
    from scapy.layers.l2 import Ether

    e = "<"
    frames = [bytes(Ether(src=g.MAC_C, dst=g.MAC_S) / p) for p in g.handshake4()]
    blob = g.ng_shb(e) + g.ng_idb(e, 1)
    offsets = []
    for k, f in enumerate(frames):
        offsets.append(len(blob))
        t = (1 << 63) + 5 if k == 1 else g.ticks(1_700_000_000_000_000_000 + k * 1000, 6)
        blob += g.ng_epb(e, 0, t, f)
    path = tmp_path / "far.pcapng"
    path.write_bytes(blob)
    with open_capture(path) as src:
        list(src)
        warned = [x for x in src.warnings if x.kind == "time_out_of_range"]
    assert len(warned) == 1
    assert (warned[0].packet, warned[0].offset) == (2, offsets[1])
    assert "after 2262" in warned[0].message


def test_packets_out_of_time_order_in_one_file_are_said(tmp_path: Path) -> None:
    """mergecap -a appends a capture to itself: the second half goes back in time, and the
    flows read in file order split; reordercap's sorted copy is quiet."""
    require_tool("mergecap")
    require_tool("reordercap")
    src_cap = PCAPS / "flow-proxy-misc.pcap"
    twice, ordered = tmp_path / "twice.pcap", tmp_path / "ordered.pcap"
    subprocess.run(["mergecap", "-F", "pcap", "-a", "-w", str(twice), str(src_cap), str(src_cap)],
                   check=True, capture_output=True)
    subprocess.run(["reordercap", str(twice), str(ordered)], check=True, capture_output=True)
    n = len(read_capture(src_cap).frames)
    with open_capture(twice) as src:
        list(src)
        back = [x for x in src.warnings if x.kind == "time_back"]
    assert len(back) == 1 and back[0].packet == n + 1  # the first packet of the second copy
    with open_capture(ordered) as src:
        list(src)
        assert not [x for x in src.warnings if x.kind == "time_back"]
