"""The field registrations (``pcapip.dissect.hf``, Wireshark's hf[]) match what the dissectors draw.

Like the expert codes (tests/test_dissect_codes.py): every TOA field drawn on any bundled
capture is registered, with a type that holds its value, and every registered field is drawn
by some capture, so the table and the Lua plugin built from it never list a dead field.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pcapip.dissect import DEFAULT_REGISTRY, dissect_frame
from pcapip.dissect.hf import HF, TOA_FIELDS
from pcapip.errors import CaptureError
from pcapip.sources.capture import open_capture
from pcapip.wireshark.layout import _ftype, _holds, plugin_fields

PCAPS = Path(__file__).resolve().parent / "pcaps"


def _drawn_toa_fields() -> dict[str, set[str]]:
    """TOA field name -> the Wireshark types of the values drawn under it, on every capture."""
    drawn: dict[str, set[str]] = defaultdict(set)
    for cap in sorted(PCAPS.rglob("*")):
        if cap.suffix not in (".pcap", ".pcapng"):
            continue
        try:
            with open_capture(str(cap)) as src:
                for b in src:
                    for i in range(len(b)):
                        for layer in dissect_frame(b.frame_bytes(i), int(b.linktype[i])):
                            for f in layer.walk():
                                if f.name.startswith("toa."):
                                    drawn[f.name].add(_ftype(f))
        except CaptureError:
            continue  # the damaged captures: their good frames were read
    return drawn


def test_every_drawn_toa_field_is_registered_and_every_registered_one_is_drawn() -> None:
    drawn = _drawn_toa_fields()
    assert set(drawn) - set(HF) == set()
    assert set(HF) - set(drawn) == set()
    for name, types in drawn.items():
        assert all(_holds(HF[name].ftype, t) for t in types), (name, HF[name].ftype, types)


def test_one_registration_per_name_and_an_ipv6_address_has_its_own() -> None:
    assert len(HF) == len(TOA_FIELDS)
    for f in TOA_FIELDS:
        assert f.label and f.ftype in ("uint8", "uint16", "uint24", "uint32", "ipv4", "ipv6",
                                       "bytes", "string"), f
        assert (f.ftype == "ipv6") == f.abbrev.endswith("6"), f
        assert bool(f.display) == f.ftype.startswith("uint"), f


def test_the_plugin_declares_the_registrations() -> None:
    assert plugin_fields(DEFAULT_REGISTRY) == list(TOA_FIELDS)
