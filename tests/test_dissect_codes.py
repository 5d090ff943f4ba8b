"""The expert-code table: every code used is listed, every listed code is used, names are consistent."""

from __future__ import annotations

import re
from pathlib import Path

import pcapip.dissect as dissect
from pcapip.dissect import CODES, Severity, expert

SRC = Path(dissect.__file__).parent
SCHEME = re.compile(r"^(proxy(\.v1|\.v2(\.tlv)?)?|toa|frame|ip|tcp|udp|dissect)\.[a-z][a-z0-9_]*$")


def used_codes() -> set[str]:
    used = set()
    for p in SRC.glob("*.py"):
        if p.name == "codes.py":
            continue
        text = p.read_text()
        used |= set(re.findall(r'(?:expert|_err|_fail|_vendor_bad)\(\s*"([a-z0-9_.]+)"', text))
        used |= set(re.findall(r'(?:_err|_fail)\([^"\n]*?,\s*"([a-z0-9_.]+)"', text))
        used |= {c for c in re.findall(r'"([a-z0-9_]+\.[a-z0-9_.]+)"', text) if c in CODES}
    return used


def test_every_used_code_is_in_the_table_and_vice_versa():
    used = used_codes()
    assert used - set(CODES) == set()
    assert set(CODES) - used == set()


def test_code_names_follow_the_scheme():
    for code, info in CODES.items():
        assert SCHEME.match(code), code
        assert isinstance(info.severity, Severity)
        assert info.meaning and "\n" not in info.meaning and len(info.meaning) < 120


def test_expert_helper_takes_severity_from_the_table():
    e = expert("proxy.v2.tlv.crc32c_mismatch", 5, 4)
    assert (e.severity, e.code, e.offset, e.length) == (Severity.ERROR, "proxy.v2.tlv.crc32c_mismatch",
                                                        5, 4)
    assert e.message == CODES["proxy.v2.tlv.crc32c_mismatch"].meaning
    assert expert("toa.v4_mapped", 0, 0, "custom").message == "custom"


def test_rejection_codes_are_errors_and_remarks_are_not():
    for code in ("proxy.v1.lone_cr", "proxy.v2.bad_command", "proxy.v2.tlv.overrun",
                 "toa.unknown_length", "toa.disagree", "toa.vip_without_client"):
        assert CODES[code].severity is Severity.ERROR
    for code in ("toa.v4_mapped", "toa.cross_family", "proxy.v2.local", "proxy.v1.unknown"):
        assert CODES[code].severity <= Severity.NOTE


def test_dissectors_do_not_import_later_stages():
    for p in SRC.glob("*.py"):
        text = p.read_text()
        for stage in ("pcapip.flows", "pcapip.report", "pcapip.cli", "pcapip.tui"):
            assert f"import {stage}" not in text and f"from {stage}" not in text, (p.name, stage)
