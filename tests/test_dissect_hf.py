"""The field registrations (``pcapip.dissect.hf``, Wireshark's hf[]) match what the dissectors draw.

Like the expert codes (tests/test_dissect_codes.py): every field drawn on any bundled
capture is registered, its tree item says the registered label (or one of the registered
other wordings) and its value fits the registered type; every registration is drawn by some
capture or by a named constructed case below, so the table (and the Lua plugin built from
it) never lists a dead field. Names shared with Wireshark have a type compatible with the
one ``tshark -G fields`` gives them.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gen.proxy_pcaps import addr_block, ip, sll, ssl_tlv, tcp, v2
from tools import require_tool

from pcapip.dissect import DEFAULT_REGISTRY, Field, dissect_frame, dissect_tcp_options, parse_proxy
from pcapip.dissect.hf import ALL_FIELDS, HF, TOA_FIELDS, FieldReg, bit_picture, holds, index, item
from pcapip.errors import CaptureError
from pcapip.sources.capture import open_capture
from pcapip.wireshark.layout import plugin_fields

TESTS = Path(__file__).resolve().parent
PCAPS = TESTS / "pcaps"
DISSECT = TESTS.parent / "pcapip" / "dissect"


def _capture_layers() -> Iterator[tuple[str, list[Field]]]:
    for cap in sorted(PCAPS.rglob("*")):
        if cap.suffix not in (".pcap", ".pcapng", ".gz"):
            continue
        try:
            with open_capture(str(cap)) as src:
                for b in src:
                    for i in range(len(b)):
                        yield cap.name, dissect_frame(b.frame_bytes(i), int(b.linktype[i]))
        except CaptureError:
            continue  # the damaged captures: their good frames were read


def _ipv6_ext(next_header: int) -> list[Field]:
    """A raw IPv6 packet with one 8-byte extension header of this type (then no next header)."""
    return dissect_frame(ip("2001:db8::1", "2001:db8::2", next_header, bytes([59, 0]) + bytes(6)),
                         101)


def _options(raw: bytes) -> list[Field]:
    return [dissect_tcp_options(raw).tree]


def _proxy(header: bytes) -> list[Field]:
    tree = parse_proxy(header, final=True).tree
    assert tree is not None
    return [tree]


_V4 = addr_block(0x11, "192.0.2.1", "192.0.2.2", 1000, 443)

#: Fields no bundled capture carries, each drawn by a constructed input.
CASES: dict[str, Callable[[], list[Field]]] = {
    "ipv6 mobility header": lambda: _ipv6_ext(135),
    "ipv6 HIP header": lambda: _ipv6_ext(139),
    "ipv6 shim6 header": lambda: _ipv6_ext(140),
    "sll with an 8-byte address": lambda: dissect_frame(
        sll(ip("192.0.2.1", "192.0.2.2", 6, tcp("192.0.2.1", "192.0.2.2", 1, 2, 0, 0, 2)), 0x0800,
            addr=bytes(range(8))), 113),
    "tcp md5 option": lambda: _options(bytes([19, 18]) + bytes(16)),
    "tcp ao option": lambda: _options(bytes([29, 4, 1, 2])),
    "tcp fast open kind 34": lambda: _options(bytes([34, 2, 34, 6, 1, 2, 3, 4])),
    "tcp option of an unknown kind": lambda: _options(bytes([99, 4, 1, 2])),
    "ssl sub-tlvs group, scheme, certificate": lambda: _proxy(v2(1, 0x11, _V4, [ssl_tlv(
        7, 0, [(0x21, b"TLSv1.3"), (0x26, b"X25519"), (0x27, b"ecdsa_secp256r1_sha256"),
               (0x28, b"\x30\x00")])])),
    "v2 stray bytes after the tlvs": lambda: _proxy(v2(1, 0x11, _V4, [b"\x01\x00"])),
    "v2 unparsed block after an invalid family": lambda: _proxy(v2(1, 0x13, b"abcd")),
}

_SUBTREE_TYPES = ("protocol", "none")


def _group(mask: int) -> str:
    cells = ["[01]" if mask >> b & 1 else r"\." for b in range(7, -1, -1)]
    return "".join(cells[:4]) + " " + "".join(cells[4:])


def label_problem(reg: FieldReg, text: str) -> str | None:
    """Why a tree item's text does not say its registered label (None when it does).

    The text is ``Label``, ``Label: value``, ``Label (more)`` or ``Label, more``, after the
    bit picture of the registered mask; a subtree, or one of the other wordings, may go on
    with a space (``TCP Option - TOA tencent-ipv4 ...``, ``TCP Option - kind 30, broken``).
    """
    if reg.mask:
        m = re.match(_group(reg.mask) + " = ", text)
        if m is None:
            return f"no bit picture of mask 0x{reg.mask:02x}"
        text = text[m.end():]
    elif re.match(r"[01.]{4} [01.]{4} = ", text):
        return "a bit picture but no registered mask"
    for label, free in ((reg.label, reg.ftype in _SUBTREE_TYPES),
                        *((alt, True) for alt in reg.also)):
        if not text.startswith(label):
            continue
        rest = text[len(label):]
        if rest == "" or rest.startswith((": ", " (", ", ")) or (free and rest[:1] == " "):
            return None
    return f"does not start with {reg.label!r} or one of {reg.also}"


def _walk(node: Field, parent: Field | None = None) -> Iterator[tuple[Field, Field | None]]:
    yield node, parent
    for c in node.children:
        yield from _walk(c, node)


def _problems(layers: list[Field]) -> Iterator[str]:
    for layer in layers:
        for f, parent in _walk(layer):
            # an unregistered name raises where its item is built; the dissector turns that
            # into this expert and stops, so it must never appear
            yield from (f"{f.name}: {e.message}" for e in f.experts
                        if e.code == "dissect.internal_error")
            reg = HF.get(f.name)
            if reg is None:
                yield f"{f.name}: not registered"
                continue
            why = label_problem(reg, f.label)
            if why is not None:
                yield f"{f.name}: {f.label!r} {why}"
            # a text TLV that is not UTF-8 keeps its bytes, and says so on its TLV
            bad_text = (reg.ftype == "string" and type(f.value) is bytes and parent is not None
                        and any(e.code == "proxy.v2.tlv.bad_text" for e in parent.experts))
            if not holds(reg, f.value) and not bad_text:
                yield f"{f.name}: {f.value!r} is not a {reg.ftype}"


def _names(layers: list[Field]) -> set[str]:
    return {f.name for layer in layers for f in layer.walk()}


@pytest.fixture(scope="module")
def captures() -> list[tuple[str, list[Field]]]:
    return list(_capture_layers())


def test_every_field_drawn_on_every_capture_is_registered_with_its_label_and_type(captures):
    problems = {f"{cap}: {p}" for cap, layers in captures for p in _problems(layers)}
    assert sorted(problems) == []


@pytest.mark.parametrize("case", CASES)
def test_every_field_of_a_constructed_case_is_registered_with_its_label_and_type(case):
    layers = CASES[case]()
    assert sorted(set(_problems(layers))) == []


def test_every_registration_is_drawn_by_a_capture_or_a_named_case(captures):
    drawn = set().union(*(_names(layers) for _, layers in captures))
    by_case = {name: _names(build()) for name, build in CASES.items()}
    assert set(HF) - drawn - set().union(*by_case.values()) == set()
    for name, names in by_case.items():  # each case earns its place
        assert names - drawn, f"case {name!r} draws only fields the captures draw"


def test_a_label_check_that_fails_on_a_wrong_label():
    reg = HF["ip.src"]
    assert label_problem(reg, "Source Address: 192.0.2.1") is None
    assert label_problem(reg, "Source address: 192.0.2.1") is not None
    assert label_problem(reg, "Source Address Foo: 1") is not None  # a field is not a subtree
    assert label_problem(HF["ip.version"], "0100 .... = Version: 4") is None
    assert label_problem(HF["ip.version"], ".... 0100 = Version: 4") is not None
    assert label_problem(HF["ip.ttl"], "0100 .... = Time to Live: 4") is not None


def test_no_dissector_builds_a_field_but_from_its_registration():
    """Every tree item comes from hf.item/hf.subtree: no module restates a label or type."""
    for path in sorted(DISSECT.glob("*.py")):
        if path.name in ("hf.py", "fields.py"):
            continue
        calls = [n.lineno for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Field"]
        assert calls == [], f"{path.name} builds Field(...) at lines {calls}"


def test_an_unregistered_name_in_a_dissector_shows_as_a_problem(monkeypatch):
    assert list(_problems(CASES["tcp ao option"]())) == []
    monkeypatch.delitem(HF, "tcp.options.ao")
    assert any("KeyError" in p for p in _problems(dissect_frame(
        ip("192.0.2.1", "192.0.2.2", 6, tcp("192.0.2.1", "192.0.2.2", 1, 2, 0, 0, 2,
                                            opts=bytes([29, 4, 1, 2]))), 101)))


def test_an_unregistered_name_or_wording_is_an_error_and_so_is_a_name_registered_twice():
    with pytest.raises(KeyError):
        item("ip.not_a_field", 1, 0, 1, 1)
    with pytest.raises(KeyError):
        item("ip.src", "x", 0, 4, alt="Source address")
    with pytest.raises(RuntimeError, match="ip.src"):
        index((HF["ip.src"], FieldReg("ip.src", "Source", "ipv4")))
    assert len(index(ALL_FIELDS)) == len(ALL_FIELDS) == len(HF)


def test_bit_picture_and_value_strings():
    assert bit_picture(0xF0, 4) == "0100 ...."
    assert bit_picture(0x0F, 5) == ".... 0101"
    assert HF["ip.proto"].strings is HF["ipv6.nxt"].strings
    assert HF["tcp.option_kind"].strings is not None and HF["tcp.option_kind"].strings[2] == (
        "Maximum segment size")


def test_one_registration_per_name_and_an_ipv6_address_has_its_own() -> None:
    for f in TOA_FIELDS:
        assert f.label and f.ftype in ("uint8", "uint16", "uint24", "uint32", "ipv4", "ipv6",
                                       "bytes", "string"), f
        assert (f.ftype == "ipv6") == f.abbrev.endswith("6"), f
        assert bool(f.display) == f.ftype.startswith("uint"), f


def test_the_plugin_declares_the_registrations() -> None:
    assert plugin_fields(DEFAULT_REGISTRY) == list(TOA_FIELDS)


# ---- against Wireshark's own registrations -----------------------------------------------

_FT = {"uint8": "FT_UINT8", "uint16": "FT_UINT16", "uint24": "FT_UINT24", "uint32": "FT_UINT32",
       "uint64": "FT_UINT64", "bool": "FT_BOOLEAN", "ipv4": "FT_IPv4", "ipv6": "FT_IPv6",
       "ether": "FT_ETHER", "bytes": "FT_BYTES", "string": "FT_STRING", "none": "FT_NONE",
       "protocol": "FT_PROTOCOL"}

#: Names pcapip shares with Wireshark but draws with another type, and why.
DIVERGENT: dict[str, str] = {
    "ip.checksum.status": "pcapip's value is the text good/bad, Wireshark's an enum",
    "vlan.dei": "pcapip draws the bit as 0/1 (DEI: 0), as for ieee8021ad.dei",
    "tcp.flags.res": "pcapip's value is the three reserved bits, Wireshark's one boolean",
    "tcp.options.tfo.request": "pcapip's value is True (a request), Wireshark's none",
    "proxy.v2.src.unix": "pcapip shows the path as text, Wireshark the 108 raw bytes",
    "proxy.v2.dst.unix": "pcapip shows the path as text, Wireshark the 108 raw bytes",
    "ipv6.fragment": "pcapip's is the Fragment header subtree, Wireshark's the reassembly link",
}


def _family(ft: str) -> str:
    if re.fullmatch(r"FT_U?INT\d+", ft):
        return "integer"
    return {"FT_STRINGZ": "FT_STRING", "FT_UINT_STRING": "FT_STRING",
            "FT_UINT_BYTES": "FT_BYTES"}.get(ft, ft)


@pytest.fixture(scope="module")
def wireshark_types() -> dict[str, str]:
    out = subprocess.run([require_tool("tshark"), "-G", "fields"], capture_output=True,
                         text=True, check=True).stdout
    types = {}
    for line in out.splitlines():
        cols = line.split("\t")
        if cols[0] == "F" and len(cols) > 3:
            types[cols[2]] = cols[3]
        elif cols[0] == "P" and len(cols) > 2:
            types[cols[2]] = "FT_PROTOCOL"
    return types


def test_names_shared_with_wireshark_have_a_compatible_type(wireshark_types):
    shared = [f for f in ALL_FIELDS if f.abbrev in wireshark_types]
    assert len(shared) > 100  # the layers' and PROXY's names are Wireshark's
    wrong = {f.abbrev: (f.ftype, wireshark_types[f.abbrev]) for f in shared
             if _family(_FT[f.ftype]) != _family(wireshark_types[f.abbrev])}
    assert set(wrong) == set(DIVERGENT), wrong
