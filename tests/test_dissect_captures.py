"""The dissector's committed captures are exactly what tests/gen/proxy_pcaps.py builds."""

from __future__ import annotations

import pytest
from gen.dissect_compare import PCAPS, read_frames_lt
from gen.proxy_pcaps import CAPTURES, V2_CASES, build_all, readme_lines

from pcapip.dissect import Severity, dissect_frame


@pytest.mark.parametrize("cap", CAPTURES, ids=lambda c: c.name)
def test_committed_capture_matches_the_generator(cap, tmp_path):
    build_all(tmp_path)
    assert (tmp_path / cap.name).read_bytes() == (PCAPS / cap.name).read_bytes()


def test_every_capture_has_its_readme_line():
    readme = (PCAPS / "README.md").read_text()
    for line in readme_lines():
        assert line in readme


def test_v2_capture_cases_decode_as_built():
    frames = read_frames_lt(PCAPS / "dissect-proxy-v2.pcap")
    headers = [x for lt, f in frames for x in dissect_frame(f, lt) if x.name == "proxy"]
    assert len(headers) == len(V2_CASES) + 2
    expect_malformed = {"bad-crc", "tlv-overrun"}
    for case, tree in zip(V2_CASES, headers, strict=False):
        errors = [e.code for f in tree.walk() for e in f.experts if e.severity >= Severity.ERROR]
        assert bool(errors) == (case.name in expect_malformed), (case.name, errors)
        assert tree.length == len(case.header)
