"""The Wireshark plugin, run by the real tshark, against pcapip's own TOA dissector.

For every committed capture with TOA options, tshark (its own link, IP and TCP
parsing, its own option walk, and the generated Lua) and
:func:`pcapip.dissect.dissect_tcp_options` must agree option by option: which
options are TOAs, their kind, variant, every field (name, bytes, value) and
every expert code. Options a receiving module never reaches (after EOL, behind
a broken option) must not appear in Wireshark at all. The option bytes and the
IP version given to pcapip are read from tshark's own PDML, so both sides see
the same bytes; the decoding is what is compared.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tools import require_tool

from pcapip.dissect import CODES, DEFAULT_REGISTRY, Field, ToaRegistry, dissect_tcp_options
from pcapip.wireshark import (
    PLUGIN_FILENAME,
    default_install_dir,
    render_plugin,
    wireshark_field_name,
)
from pcapip.wireshark.lua import EXPERT_GROUPS, lua_str

REPO = Path(__file__).resolve().parents[1]
PCAPS = REPO / "tests" / "pcaps"


def toa_captures() -> list[Path]:
    """Committed captures with TOA options: those named for TOA, the link-layer set and VXLAN
    (tunnel-vxlan.pcap: Wireshark decapsulates it itself)."""
    return sorted(
        p
        for d in (PCAPS, PCAPS / "public")
        for p in d.iterdir()
        if p.suffix in (".pcap", ".pcapng")
        and ("toa" in p.name or p.name.startswith("dissect-link-") or p.name == "tunnel-vxlan.pcap")
    )


def _load_generator():
    spec = importlib.util.spec_from_file_location(
        "toa_pcaps", REPO / "tests" / "gen" / "toa_pcaps.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("toa_pcaps", mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


# --- running tshark --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tshark() -> str:
    return require_tool("tshark")


@pytest.fixture(scope="module")
def clean_home(tmp_path_factory) -> Path:
    """An empty HOME: no installed copy of the plugin (two "toa" protocols cannot load)."""
    return tmp_path_factory.mktemp("home")


def tshark_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    return env


def run_tshark(tshark: str, home: Path, *args: str) -> str:
    proc = subprocess.run(
        [tshark, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=tshark_env(home),
        check=False,
    )
    assert proc.returncode == 0, (
        f"tshark {' '.join(args)} failed ({proc.returncode}): {proc.stderr}"
    )
    assert "Lua" not in proc.stderr.replace("Lua Plugins", ""), proc.stderr
    assert 'name="_ws.lua.error"' not in proc.stdout  # a Lua error inside a packet (PDML)
    return proc.stdout


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plugin") / PLUGIN_FILENAME
    path.write_text(render_plugin(), encoding="utf-8")
    return path


# --- reading tshark's PDML -------------------------------------------------------------------


@dataclass
class WsItem:
    """One TOA subtree as Wireshark drew it."""

    pos: int
    size: int
    fields: list[tuple[str, int, int, str, str]]  # name, pos, size, show, value(hex)
    experts: list[str]
    expert_info: list[tuple[str, str, str]]  # code, severity, group (Wireshark's numbers)


@dataclass
class Area:
    """The TCP options of one TCP header, as tshark saw them."""

    pos: int
    data: bytes
    ip_version: int | None


@dataclass
class Frame:
    number: int
    areas: list[Area] = field(default_factory=list)
    toa: list[WsItem] = field(default_factory=list)
    # name, pos, size, show, value(hex), showname
    all_fields: list[tuple[str, int, int, str, str, str]] = field(default_factory=list)


def parse_pdml(text: str) -> dict[int, Frame]:
    frames: dict[int, Frame] = {}
    root = ET.fromstring(text)
    for pkt in root.iter("packet"):
        num = int(next(f.get("show") for f in pkt.iter("field") if f.get("name") == "frame.number"))
        fr = Frame(num)
        version = None
        for el in pkt.iter():
            name = el.get("name", "")
            if el.tag == "proto" and name in ("ip", "ipv6"):
                version = 4 if name == "ip" else 6
            elif el.tag == "field" and name == "tcp.options":
                fr.areas.append(
                    Area(int(el.get("pos")), bytes.fromhex(el.get("value", "")), version)
                )
            elif el.tag == "proto" and name == "toa":
                fr.toa.append(_ws_item(el))
            if el.tag == "field":
                fr.all_fields.append(
                    (
                        name,
                        int(el.get("pos", "0")),
                        int(el.get("size", "0")),
                        el.get("show", ""),
                        el.get("value", ""),
                        el.get("showname", ""),
                    )
                )
        frames[num] = fr
    return frames


def _ws_item(el: ET.Element) -> WsItem:
    fields = [
        (
            c.get("name"),
            int(c.get("pos")),
            int(c.get("size")),
            c.get("show", ""),
            c.get("value", ""),
        )
        for c in el
        if c.tag == "field" and c.get("name", "").startswith("toa.") and c.get("name") not in CODES
    ]
    info = []
    for e in el.iter("field"):
        if e.get("name") != "_ws.expert":
            continue
        parts = {c.get("name"): c.get("show") for c in e}
        code = next(n for n in parts if n.startswith("toa."))
        info.append((code, parts["_ws.expert.severity"], parts["_ws.expert.group"]))
    return WsItem(
        int(el.get("pos")), int(el.get("size")), fields, sorted(c for c, _, _ in info), info
    )


# --- what pcapip says --------------------------------------------------------------------------


@dataclass
class Expected:
    pos: int
    size: int
    kind: int
    client_ip: str | None
    client_port: int | None
    client_family: int | None
    vip_ip: str | None
    vip_port: int | None
    vip_family: int | None
    fields: list[tuple[str, int, int, object]]  # Wireshark name, pos, size, value
    experts: list[str]


def pcapip_options(frame: Frame, registry: ToaRegistry = DEFAULT_REGISTRY) -> list[Expected]:
    """The TOAs a receiving module reaches, per pcapip, in wire order."""
    out = []
    for area in frame.areas:
        res = dissect_tcp_options(
            area.data, base_offset=area.pos, registry=registry, ip_version=area.ip_version
        )
        for o in res.options:
            if not o.reached:
                continue
            assert o.tree is not None
            walk = [e.code for e in res.experts if e.offset == o.offset and e.code in EXPERT_GROUPS]
            out.append(
                Expected(
                    o.offset,
                    o.length,
                    o.kind,
                    o.client_ip,
                    o.client_port,
                    _family(o.tree, "toa.addr"),
                    o.vip_ip,
                    o.vip_port,
                    _family(o.tree, "toa.vip"),
                    [
                        (wireshark_field_name(f.name, f.value), f.offset, f.length, f.value)
                        for f in o.tree.children
                    ],
                    sorted([e.code for e in o.experts] + walk),
                )
            )
    return out


def _family(tree: Field, name: str) -> int | None:
    f = next((f for f in tree.children if f.name in (name, name + "6")), None)
    if f is None:
        return None
    return 4 if isinstance(f.value, ipaddress.IPv4Address) else 6


def same_value(expected: object, show: str, value_hex: str) -> bool:
    if isinstance(expected, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return ipaddress.ip_address(show) == expected
    if isinstance(expected, bool):
        return False
    if isinstance(expected, int):
        return int(show, 0) == expected
    if isinstance(expected, bytes):
        return bytes.fromhex(value_hex) == expected
    return show == expected


def compare_frame(frame: Frame, registry: ToaRegistry = DEFAULT_REGISTRY) -> None:
    want = pcapip_options(frame, registry)
    got = frame.toa
    where = f"frame {frame.number}"
    assert [(w.pos, w.size) for w in want] == [(g.pos, g.size) for g in got], where
    for w, g in zip(want, got, strict=True):
        at = f"{where}, option at byte {w.pos}"
        assert [(n, p, s) for n, p, s, _ in w.fields] == [
            (n, p, s) for n, p, s, _, _ in g.fields
        ], at
        for (name, _, _, value), (_, _, _, show, vhex) in zip(w.fields, g.fields, strict=True):
            assert same_value(value, show, vhex), f"{at}: {name} is {show!r}, pcapip says {value!r}"
        unknown = set(w.experts) - set(EXPERT_GROUPS)
        assert not unknown, f"{at}: pcapip raises {unknown}, which the plugin does not know"
        assert g.experts == w.experts, at


# --- tests: tshark decodes like pcapip ---------------------------------------------------------


@pytest.fixture(scope="module")
def pdml(tshark, clean_home, plugin) -> dict[str, dict[int, Frame]]:
    out = {}
    for cap in toa_captures():
        text = run_tshark(
            tshark, clean_home, "-X", f"lua_script:{plugin}", "-r", str(cap), "-T", "pdml"
        )
        out[cap.name] = parse_pdml(text)
    return out


def test_captures_present():
    names = {p.name for p in toa_captures()}
    # public captures and the generated variant set must both be compared
    assert {
        "toa-254-250-alibaba-slb.pcap",
        "toa-252-alibaba-vpc.pcap",
        "toa-variants.pcap",
        "toa-bad-lengths.pcap",
    } <= names


@pytest.mark.system
@pytest.mark.parametrize("capture", [p.name for p in toa_captures()])
def test_tree_matches_pcapip(pdml, capture):
    frames = pdml[capture]
    assert frames, f"tshark read no packets from {capture}"
    total = 0
    for fr in frames.values():
        compare_frame(fr)
        total += len(fr.toa)
    if capture == "toa-253-bad-record-lengths.pcap":
        # its 253 options have length 8, no 253 variant's: RFC 6994 experiments on both sides
        assert total == 0
    else:
        assert total > 0, f"{capture}: no TOA option found by either side"


@pytest.mark.system
@pytest.mark.parametrize("capture", [p.name for p in toa_captures()])
def test_fields_output_matches_pcapip(tshark, clean_home, plugin, pdml, capture):
    """The plain ``-T fields -e toa.addr -e toa.port`` export, packet by packet."""
    cols = [
        "frame.number",
        "toa.kind",
        "toa.addr",
        "toa.addr6",
        "toa.port",
        "toa.vip",
        "toa.vip6",
        "toa.vip_port",
    ]
    args = [
        "-X",
        f"lua_script:{plugin}",
        "-r",
        str(next(p for p in toa_captures() if p.name == capture)),
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]
    for c in cols:
        args += ["-e", c]
    got = {}
    for line in run_tshark(tshark, clean_home, *args).splitlines():
        parts = line.split("\t")
        got[int(parts[0])] = [p.split(",") if p else [] for p in parts[1:]]
    assert got.keys() == pdml[capture].keys()
    for num, fr in pdml[capture].items():
        want = pcapip_options(fr)

        def unmap(text: str | None) -> object:
            # both sides carry the address as on the wire; tshark 4.0 writes a mapped one
            # as ::ffff:cb00:7109, pcapip (like inet_ntop and nginx) as ::ffff:203.0.113.9
            return ipaddress.ip_address(text) if text is not None else None

        kinds, addr, addr6, port, vip, vip6, vport = got[num]
        assert [int(k) for k in kinds] == [w.kind for w in want], num
        assert addr == [w.client_ip for w in want if w.client_family == 4], num
        assert [unmap(a) for a in addr6] == [
            unmap(w.client_ip) for w in want if w.client_family == 6
        ], num
        assert [int(p) for p in port] == [
            w.client_port for w in want if w.client_port is not None
        ], num
        assert vip == [w.vip_ip for w in want if w.vip_family == 4], num
        assert [unmap(a) for a in vip6] == [unmap(w.vip_ip) for w in want if w.vip_family == 6], num
        assert [int(p) for p in vport] == [w.vip_port for w in want if w.vip_port is not None], num


@pytest.mark.system
def test_unreached_options_are_not_toas(pdml):
    """A TOA after EOL, behind a length-1 option or running past the header: pcapip decodes it
    (unreached), Wireshark's walk never hands it to the plugin."""
    seen = 0
    for frames in pdml.values():
        for fr in frames.values():
            for area in fr.areas:
                res = dissect_tcp_options(area.data, base_offset=area.pos)
                for o in res.options:
                    if not o.reached:
                        seen += 1
                        assert all(g.pos != o.offset for g in fr.toa), (fr.number, o.offset)
    assert seen >= 3


@pytest.mark.system
def test_filters_use_typed_addresses(tshark, clean_home, plugin, pdml):
    """toa.addr is an IPv4 field and toa.addr6 an IPv6 one, so subnets filter correctly."""
    cap = PCAPS / "toa-variants.pcap"
    frames = pdml[cap.name]

    def matching(filt: str) -> list[int]:
        out = run_tshark(
            tshark,
            clean_home,
            "-X",
            f"lua_script:{plugin}",
            "-r",
            str(cap),
            "-Y",
            filt,
            "-T",
            "fields",
            "-e",
            "frame.number",
        )
        return [int(x) for x in out.split()]

    net4, net6 = ipaddress.ip_network("203.0.113.0/28"), ipaddress.ip_network("2001:db8:c::/48")
    want4 = [
        n
        for n, fr in frames.items()
        if any(
            w.client_family == 4 and ipaddress.ip_address(w.client_ip) in net4
            for w in pcapip_options(fr)
        )
    ]
    want6 = [
        n
        for n, fr in frames.items()
        if any(
            w.client_family == 6 and ipaddress.ip_address(w.client_ip) in net6
            for w in pcapip_options(fr)
        )
    ]
    assert want4 and want6
    assert matching(f"toa.addr == {net4}") == want4
    assert matching(f"toa.addr6 == {net6}") == want6


@pytest.mark.system
def test_malformed_expert_on_unknown_length(pdml):
    """A known kind with a length no variant has is a malformed-packet error in Wireshark."""
    info = [
        i
        for f in pdml["toa-bad-lengths.pcap"].values()
        for g in f.toa
        for i in g.expert_info
        if i[0] == "toa.unknown_length"
    ]
    assert len(info) >= 3  # 200 with lengths 7, 10 and 2, 201 with 8
    # PI_ERROR is 0x00800000, PI_MALFORMED 0x07000000 (epan/proto.h)
    assert set(info) == {("toa.unknown_length", str(0x00800000), str(0x07000000))}


@pytest.mark.system
def test_non_toa_uses_of_toa_kinds_stay_wiresharks(pdml):
    """28/4 is User Timeout and 253/254 with a known experiment id are not TOAs: Wireshark's
    own dissectors show them, except the Fast Open cookie, which the plugin draws as text."""
    uto = tfo_req = tfo_cookie = smc = 0
    for frames in pdml.values():
        for fr in frames.values():
            fields = fr.all_fields
            for area in fr.areas:
                res = dissect_tcp_options(area.data, base_offset=area.pos)
                for node in res.tree.children:
                    if node.name == "toa":
                        continue
                    assert all(g.pos != node.offset for g in fr.toa), (fr.number, node.offset)
                    inside = [f for f in fields if node.offset <= f[1] < node.offset + node.length]
                    if node.name == "tcp.options.user_to":
                        uto += 1
                        want = node.find("tcp.options.user_to_val")
                        assert want is not None
                        assert ("tcp.options.user_to_val", want.offset, 2, str(want.value)) in [
                            f[:4] for f in inside
                        ], fr.number
                    elif node.find("tcp.options.tfo.request") is not None:
                        tfo_req += 1
                        assert "tcp.options.tfo.request" in [f[0] for f in inside], fr.number
                    elif node.find("tcp.options.tfo.cookie") is not None:
                        # Wireshark's cookie dissector reads the TCP header, which a plugin
                        # cannot hand on; the plugin shows the option as text instead
                        tfo_cookie += 1
                        kind = area.data[node.offset - area.pos]
                        assert any(
                            f[1] == node.offset
                            and f[5].startswith(
                                f"TCP Option - kind {kind}, length {node.length}: TCP Fast Open"
                            )
                            for f in inside
                        ), fr.number
                    elif node.name == "tcp.options.experimental":
                        exid = node.find("tcp.options.experimental.exid")
                        if exid is not None and exid.value > 0xFFFF:
                            smc += 1  # Wireshark reads 16-bit ids: the first half
                            assert any(
                                f[:3] == ("tcp.options.experimental.exid", node.offset + 2, 2)
                                and int(f[3], 0) == exid.value >> 16
                                for f in inside
                            ), fr.number
    assert uto >= 1 and tfo_req >= 1 and tfo_cookie >= 1 and smc >= 1


@pytest.mark.system
def test_restricted_kinds_leave_the_rest_to_wireshark(tshark, clean_home, tmp_path, pdml):
    registry = ToaRegistry.from_spec(["200"])
    lua = tmp_path / "only200.lua"
    lua.write_text(render_plugin(registry), encoding="utf-8")
    cap = PCAPS / "toa-variants.pcap"
    frames = parse_pdml(
        run_tshark(tshark, clean_home, "-X", f"lua_script:{lua}", "-r", str(cap), "-T", "pdml")
    )
    exids = 0
    for fr in frames.values():
        compare_frame(fr, registry)
        assert all(g.fields[0][3] == "200" for g in fr.toa)
        for w in pcapip_options(fr):  # default registry: what the restricted plugin leaves out
            if w.kind == 254:
                exids += 1
                assert ("tcp.options.experimental.exid", w.pos + 2) in [
                    f[:2] for f in fr.all_fields
                ]
    assert exids >= 3


@pytest.mark.system
def test_added_kind(tshark, clean_home, tmp_path):
    """--toa-kind +77: a kind nobody documents, decoded as port+IPv4 (8) and port+IPv6 (20)."""
    gen = _load_generator()
    frames = []
    frames += gen.flow_frames(
        gen.EGRESS4,
        gen.ORIGIN4,
        52000,
        80,
        gen.handshake(None, gen.toa_v4(77, 42000, "203.0.113.77")),
        ident=1,
    )
    frames += gen.flow_frames(
        gen.EGRESS6,
        gen.ORIGIN6,
        52001,
        80,
        gen.handshake(None, gen.toa_v6(77, 42001, "2001:db8:c::77")),
        ident=9,
    )
    frames += gen.flow_frames(
        gen.EGRESS4,
        gen.ORIGIN4,
        52002,
        80,
        gen.handshake(None, gen.opt(77, b"\x01\x02\x03")),
        ident=17,
    )
    cap = tmp_path / "kind77.pcap"
    gen.write_pcap(cap, frames)
    registry = ToaRegistry.from_spec(["+77"])
    lua = tmp_path / "plus77.lua"
    lua.write_text(render_plugin(registry), encoding="utf-8")
    got = parse_pdml(
        run_tshark(tshark, clean_home, "-X", f"lua_script:{lua}", "-r", str(cap), "-T", "pdml")
    )
    found = []
    for fr in got.values():
        compare_frame(fr, registry)
        found += [(w.client_ip, w.client_port, w.experts) for w in pcapip_options(fr, registry)]
    assert found == [
        ("203.0.113.77", 42000, []),
        ("2001:db8:c::77", 42001, []),
        (None, None, ["toa.unknown_length"]),
    ]


@pytest.mark.system
def test_plugin_registers_typed_fields(tshark, tmp_path):
    home = tmp_path / "home"  # -G takes no -X: load the plugin from the personal folder
    lua_dir = home / ".local" / "lib" / "wireshark" / "plugins"
    lua_dir.mkdir(parents=True)
    (lua_dir / PLUGIN_FILENAME).write_text(render_plugin(), encoding="utf-8")
    out = run_tshark(tshark, home, "-G", "fields")
    types = {
        row.split("\t")[2]: row.split("\t")[3]
        for row in out.splitlines()
        if row.startswith("F\t") and row.split("\t")[2].startswith("toa.")
    }
    assert types["toa.addr"] == "FT_IPv4" and types["toa.addr6"] == "FT_IPv6"
    assert types["toa.vip"] == "FT_IPv4" and types["toa.vip6"] == "FT_IPv6"
    assert types["toa.port"] == "FT_UINT16" and types["toa.variant"] == "FT_STRING"
    # every field pcapip's tree uses for any variant exists in Wireshark with a matching type
    for v in DEFAULT_REGISTRY.variants:
        res = dissect_tcp_options(bytes([v.kind, v.length]) + bytes(range(1, v.length - 1)))
        for f in res.options[0].tree.children:
            name = wireshark_field_name(f.name, f.value)
            assert name in types, name
            assert types[name] == _ws_type(f), name


def _ws_type(f: Field) -> str:
    if isinstance(f.value, ipaddress.IPv4Address):
        return "FT_IPv4"
    if isinstance(f.value, ipaddress.IPv6Address):
        return "FT_IPv6"
    if isinstance(f.value, bytes):
        return "FT_BYTES"
    if isinstance(f.value, str):
        return "FT_STRING"
    return "FT_UINT8" if f.length == 1 else "FT_UINT16" if f.length == 2 else "FT_UINT32"


# --- installing --------------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pcapip", "wireshark-plugin", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.mark.system
def test_install_is_loaded_without_x(tshark, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = tshark_env(home)
    proc = run_cli("--install", env=env)
    assert proc.returncode == 0, proc.stderr
    folders = subprocess.run(
        [tshark, "-G", "folders"], capture_output=True, text=True, env=env, timeout=60, check=True
    ).stdout
    lua_dir = Path(re.search(r"^Personal Lua Plugins:\s*(.+)$", folders, re.M).group(1).strip())
    assert lua_dir.is_relative_to(home)
    target = lua_dir / PLUGIN_FILENAME
    assert target.read_text(encoding="utf-8") == render_plugin()
    assert str(target) in proc.stderr
    out = run_tshark(
        tshark,
        home,
        "-r",
        str(PCAPS / "public" / "toa-254-250-alibaba-slb.pcap"),
        "-Y",
        "toa",
        "-T",
        "fields",
        "-e",
        "toa.addr",
        "-e",
        "toa.port",
    )
    assert out.split("\n")[0].split("\t") == ["59.82.47.36", "27812"]


def test_install_without_tshark_uses_documented_folder(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), PATH=str(tmp_path / "empty"))
    proc = run_cli("--install", env=env)
    assert proc.returncode == 0, proc.stderr
    target = home / ".local" / "lib" / "wireshark" / "plugins" / PLUGIN_FILENAME
    assert target.read_text(encoding="utf-8") == render_plugin()


def test_default_install_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    assert default_install_dir() == tmp_path / ".local" / "lib" / "wireshark" / "plugins"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    assert default_install_dir() == tmp_path / "Roaming" / "Wireshark" / "plugins"


# --- the command line --------------------------------------------------------------------------


def test_stdout_and_output_file(tmp_path):
    proc = run_cli()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == render_plugin()
    out = tmp_path / "toa.lua"
    proc = run_cli("-o", str(out), "--toa-kind", "+77")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    text = out.read_text(encoding="utf-8")
    assert text == render_plugin(ToaRegistry.from_spec(["+77"]))
    assert "[77] = {" in text and "[77] = {" not in render_plugin()


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "x.lua", "--install"], "not both"),
        (["--toa-kind", "256"], "--toa-kind"),
        (["--toa-kind", "abc"], "--toa-kind"),
        (["-o", "/nonexistent-dir/x.lua"], "/nonexistent-dir/x.lua"),
    ],
)
def test_usage_errors(args, message, tmp_path):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_lua_strings_are_escaped():
    assert lua_str('a"b\\c') == '"a\\"b\\\\c"'
    assert lua_str("é\n") == '"\\195\\169\\010"'


def test_plugin_text_follows_registry():
    text = render_plugin()
    for v in DEFAULT_REGISTRY.variants:
        assert lua_str(v.name) in text
    restricted = render_plugin(ToaRegistry.from_spec(["254"]))
    assert "tencent-ipv4" not in restricted and "lvs-ipv4" in restricted
    # every expert the plugin raises is one of pcapip's codes, with pcapip's severity
    for code in EXPERT_GROUPS:
        assert code in CODES
        assert lua_str(code) in text
    kinds = {int(k) for k in re.findall(r"^  \[(\d+)\] = \{$", text, re.M)}
    assert kinds == set(DEFAULT_REGISTRY.kinds)


@pytest.mark.system
@pytest.mark.parametrize(
    # (not tcpdump-tfo.pcap: the plugin draws an experimental-form TFO cookie as text, so its
    # fields differ by design; test_non_toa_uses_of_toa_kinds_stay_wiresharks checks that text)
    "name", ["tcpdump-accecn-handshake.pcap", "toa-253-bad-record-lengths.pcap"]
)
def test_rfc6994_options_stay_wireshark_s(tshark, clean_home, tmp_path, name):
    """A 253/254 option of no TOA length is an RFC 6994 experiment: the plugin hands it back,
    so Wireshark's own fields (experiment id, AccECN counters) come out as without it."""
    cap = PCAPS / "public" / name
    lua = tmp_path / "pcapip_toa.lua"
    lua.write_text(render_plugin(DEFAULT_REGISTRY), encoding="utf-8")
    fields = ["-T", "fields", "-E", "occurrence=a"]
    for f in ("tcp.options.experimental.exid", "tcp.options.acc_ecn.ee0b",
              "tcp.options.acc_ecn.eceb", "tcp.options.acc_ecn.ee1b"):
        fields += ["-e", f]
    plain = run_tshark(tshark, clean_home, "-r", str(cap), *fields)
    with_plugin = run_tshark(tshark, clean_home, "-X", f"lua_script:{lua}", "-r", str(cap),
                             *fields, "-e", "toa.kind", "-e", "_ws.expert")
    rows = [line.split("\t") for line in with_plugin.splitlines()]
    assert "\n".join("\t".join(r[:4]) for r in rows) == plain.rstrip("\n")
    assert any(r[0] for r in rows)  # the captures do carry experiments
    assert not any(r[4] for r in rows)  # no TOA
    assert not any("toa." in r[5] for r in rows)
