"""Damaged and wrong input: one clear error naming file, packet and byte offset.

Frames before the damage must all be delivered first, identical to what a
clean copy of the file gives.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import pytest
from engine_ref import PCAPS, read_capture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcapip.decode import ST_UNKNOWN_LINK, decode, status_counts
from pcapip.errors import CaptureError
from pcapip.sources import open_capture


def read_until_error(path: Path | str, **kw) -> tuple[list[bytes], list[int], CaptureError | None]:
    """Frames (and their file offsets) delivered before the error, and the error."""
    frames: list[bytes] = []
    offsets: list[int] = []
    try:
        with open_capture(path, **kw) as src:
            for b in src:
                frames += [b.frame_bytes(i) for i in range(len(b))]
                offsets += b.file_offset.tolist()
    except CaptureError as exc:
        return frames, offsets, exc
    return frames, offsets, None


def clean_frames(name: str) -> list[bytes]:
    return read_capture(PCAPS / name).frames


@pytest.mark.parametrize("backend", ["pure", "compiled"])
def test_truncated_last_record(backend):
    path = PCAPS / "bad-truncated-last.pcap"
    frames, _, err = read_until_error(path, backend=backend)
    assert err is not None
    assert len(frames) == 5 and frames == clean_frames("eth-mixed-us-le.pcap")[:5]
    assert (err.path, err.frame) == (str(path), 6)
    # the sixth record header starts right after the five good records
    assert err.offset == 24 + sum(16 + len(f) for f in frames)
    assert "truncated record" in err.message and "announces 54" in err.message
    text = str(err)
    assert text.startswith(f"{path}, packet 6, byte offset {err.offset}: truncated record")
    assert "\n" not in text


@pytest.mark.parametrize("cut", range(1, 16))
def test_file_cut_inside_a_record_header(tmp_path: Path, cut: int):
    good = (PCAPS / "eth-mixed-us-le.pcap").read_bytes()
    first = 24 + 16 + struct.unpack_from("<I", good, 24 + 8)[0]  # end of frame 1
    p = tmp_path / "cut.pcap"
    p.write_bytes(good[: first + cut])
    frames, _, err = read_until_error(p)
    assert len(frames) == 1 and err is not None
    assert (err.frame, err.offset) == (2, first)
    assert f"ends {cut} bytes into the 16-byte header" in err.message


@pytest.mark.parametrize("backend", ["pure", "compiled"])
def test_absurd_record_length(backend):
    path = PCAPS / "bad-absurd-caplen.pcap"
    frames, offsets, err = read_until_error(path, backend=backend)
    assert frames == clean_frames("eth-mixed-us-le.pcap")[:2]
    assert err.frame == 3 and err.offset == 24 + sum(16 + len(f) for f in frames)
    assert "absurd captured length of 2147483632" in err.message


@pytest.mark.parametrize("backend", ["pure", "compiled"])
def test_pcapng_bad_byte_order_magic(backend):
    path = PCAPS / "bad-bom.pcapng"
    frames, offsets, err = read_until_error(path, backend=backend)
    assert frames == clean_frames("eth-mixed-us-le.pcap")[:3]
    assert err.frame == 4
    assert "bad byte-order magic 0x11223344" in err.message
    raw = path.read_bytes()
    assert raw[err.offset : err.offset + 4] == b"\x0a\x0d\x0d\x0a"  # points at the damaged SHB


@pytest.mark.parametrize("backend", ["pure", "compiled"])
def test_pcapng_bad_block_length(backend):
    path = PCAPS / "bad-block-length.pcapng"
    frames, _, err = read_until_error(path, backend=backend)
    assert len(frames) == 3 and err.frame == 4
    assert "bad block length 150 in enhanced packet block" in err.message
    raw = path.read_bytes()
    assert struct.unpack_from("<II", raw, err.offset) == (6, 150)


def test_pcapng_trailer_mismatch_and_short_shb(tmp_path: Path):
    raw = bytearray((PCAPS / "multi-section.pcapng").read_bytes())
    shb_len = struct.unpack_from("<I", raw, 4)[0]
    idb_len = struct.unpack_from("<I", raw, shb_len + 4)[0]
    # corrupt the trailing length of the first IDB
    struct.pack_into("<I", raw, shb_len + idb_len - 4, 999)
    p = tmp_path / "trailer.pcapng"
    p.write_bytes(bytes(raw))
    frames, _, err = read_until_error(p)
    assert frames == [] and err.frame == 1 and err.offset == shb_len
    assert "does not match the length 999 at its end" in err.message
    p.write_bytes(bytes((PCAPS / "multi-section.pcapng").read_bytes()[:20]))
    with pytest.raises(CaptureError, match="truncated section header block"):
        open_capture(p)


def test_pcapng_packet_names_an_undescribed_interface():
    frames, _, err = read_until_error(PCAPS / "bad-interface-id.pcapng")
    assert len(frames) == 3 and err.frame == 4
    assert "refers to interface 5, but its section describes 1 interface" in err.message


def test_empty_file():
    with pytest.raises(CaptureError) as ei:
        open_capture(PCAPS / "empty.pcap")
    assert (ei.value.frame, ei.value.offset) == (1, 0) and "empty file" in str(ei.value)


def test_not_a_capture():
    with pytest.raises(CaptureError) as ei:
        open_capture(PCAPS / "not-a-capture.pcap")
    msg = str(ei.value)
    assert msg.startswith(str(PCAPS / "not-a-capture.pcap"))
    assert "not a pcap or pcapng capture" in msg and "'This'" in msg


@pytest.mark.parametrize(
    "content,expect",
    [
        (b"\xd4\xc3", "only 2 bytes"),
        (b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00", "truncated pcap file header: 8 of 24 bytes"),
        (b"\xd4\xc3\xb2\xa1\x03\x00\x00\x00" + bytes(16), "unsupported pcap version 3.0"),
        (b"\x28\xb5\x2f\xfd" + bytes(20), "corrupt zstd data: the compressed stream ends early"),
        (b"\x04\x22\x4d\x18" + bytes(20), "corrupt lz4 data"),  # (lz4's frame format)
        (b"\xfd7zXZ\x00" + bytes(20), "xz-compressed data \\(decompress it first"),
        (b"\x1f\x8b\x08\x00" + bytes(6), "corrupt gzip data"),
        (gzip.compress(b"hello world, not a capture"), "not a pcap or pcapng capture"),
        (gzip.compress(b""), "empty file"),
    ],
)
def test_short_and_foreign_headers(tmp_path: Path, content: bytes, expect: str):
    p = tmp_path / "x"
    p.write_bytes(content)
    with pytest.raises(CaptureError, match=expect), open_capture(p) as src:
        list(src)


def test_missing_file_and_directory(tmp_path: Path):
    with pytest.raises(CaptureError, match="cannot open: No such file"):
        open_capture(tmp_path / "nope.pcap")
    with pytest.raises(CaptureError, match="(?i)is a directory"):
        open_capture(tmp_path)


def test_truncated_gzip_keeps_what_was_decompressed():
    frames, _, err = read_until_error(PCAPS / "bad-truncated.pcap.gz")
    assert err is not None and "corrupt gzip data" in err.message
    good = clean_frames("eth-mixed-us-le.pcap")
    assert 0 < len(frames) < 6 and frames == good[: len(frames)]
    assert err.frame == len(frames) + 1


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_truncated_zstd_and_lz4_keep_what_was_decompressed(tmp_path: Path, codec: str):
    """A capture compressed by the ``zstd`` / ``lz4`` tool in two frames (as a capture
    compressed while written is), the second cut short: every frame of the first half is
    read, then one error naming the compression, where the capture's bytes stopped."""
    import subprocess

    from tools import require_tool

    tool = require_tool(codec)
    whole = (PCAPS / "troubleshooting.pcap").read_bytes()
    half = 60_000  # (inside a record)
    parts = [
        subprocess.run([tool, "-q", "-c"], input=part, capture_output=True, check=True).stdout
        for part in (whole[:half], whole[half:])
    ]
    for cut, data in (
        (False, parts[0] + parts[1]),
        (True, parts[0] + parts[1][: len(parts[1]) // 2]),
        (True, parts[0] + parts[1][:6]),  # (inside the second frame's header)
    ):
        path = tmp_path / f"x.pcap.{codec}"
        path.write_bytes(data)
        frames, offsets, err = read_until_error(path)
        good = clean_frames("troubleshooting.pcap")
        assert frames == good[: len(frames)]
        if not cut:
            assert err is None and len(frames) == len(good)
            continue
        assert err is not None and f"corrupt {codec} data" in err.message, err
        assert "ends early" in err.message
        assert 0 < len(frames) < len(good) and err.frame == len(frames) + 1
        assert offsets[-1] + 16 + len(frames[-1]) <= half


def test_unknown_link_type_is_counted_and_named():
    path = PCAPS / "unknown-linktype.pcap"
    with open_capture(path) as src:
        packets = [decode(b) for b in src]
        warnings = src.warnings
    counts = status_counts(packets[0])
    assert counts["unknown_link"] == counts["packets"] == 3
    assert all(p.status[0] & ST_UNKNOWN_LINK for p in packets)
    assert [str(w) for w in warnings] == [
        f"{path}, packet 1, byte offset 24: link type 147 (USER0) is not supported; "
        "its frames are counted as undecoded (and 2 more packets like it)"
    ]
    assert (warnings[0].packet, warnings[0].offset, warnings[0].more) == (1, 24, 2)


# --- fuzz: any corruption gives a CaptureError at worst, and the frames before it are intact


def _record_ends(name: str) -> list[tuple[int, bytes]]:
    """(end offset of the record, frame bytes) of a clean capture, from its own framing."""
    raw = (PCAPS / name).read_bytes()
    out = []
    if raw[:4] == b"\xd4\xc3\xb2\xa1":
        pos = 24
        while pos + 16 <= len(raw):
            cap = struct.unpack_from("<I", raw, pos + 8)[0]
            out.append((pos + 16 + cap, raw[pos + 16 : pos + 16 + cap]))
            pos += 16 + cap
    return out


FUZZ_PCAP = "eth-mixed-us-le.pcap"
FUZZ_NG = "multi-section.pcapng"


@settings(
    max_examples=int(os.environ.get("PCAPIP_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from([FUZZ_PCAP, FUZZ_NG]),
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.floats(0.05, 1.0),
    backend=st.sampled_from(["pure", "compiled"]),
)
def test_corrupted_captures_never_crash(tmp_path_factory, name, edits, cut, backend):
    raw = bytearray((PCAPS / name).read_bytes())
    first_damage = len(raw)
    for where, value in edits:
        i = min(int(where * len(raw)), len(raw) - 1)
        if raw[i] != value:
            raw[i] = value
            first_damage = min(first_damage, i)
    end = max(1, int(cut * len(raw)))
    raw = raw[:end]
    first_damage = min(first_damage, end)
    p = tmp_path_factory.mktemp("fuzz") / "f"
    p.write_bytes(bytes(raw))
    try:
        with open_capture(p, backend=backend, chunk_size=4096) as src:
            got = []
            for b in src:
                decode(b, backend=backend)
                got += [(int(b.file_offset[i]), b.frame_bytes(i)) for i in range(len(b))]
    except CaptureError as exc:
        assert exc.path == str(p) and "\n" not in str(exc)
    if name == FUZZ_PCAP and first_damage > 24:
        # every record that ends before the first damaged byte is delivered unchanged
        intact = [f for e, f in _record_ends(name) if e <= first_damage]
        assert [f for _, f in got[: len(intact)]] == intact
