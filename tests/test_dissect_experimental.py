"""Kinds 253/254 are shared: a TOA only when the length is a TOA variant's.

Any other 253/254 option long enough for an RFC 6994 experiment id is that
experiment (Accurate ECN, Fast Open, SMC-R, an unregistered one), shown in
the tree like Wireshark shows it and never a TOA, never an error. Checked
against tshark on tcpdump's own public captures (a real curl -> Apache
AccECN handshake, and TCP Fast Open in its experimental form).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gen.dissect_compare import read_frames_lt, run_tshark
from tools import require_tool

from pcapip import analyze
from pcapip.dissect import dissect_frame, dissect_tcp_options
from pcapip.dissect.toa_registry import DEFAULT_REGISTRY, ToaRegistry

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT / "tests" / "pcaps" / "public"
ACCECN = PUBLIC / "tcpdump-accecn-handshake.pcap"
TFO = PUBLIC / "tcpdump-tfo.pcap"


def _opt(kind: int, body: bytes) -> bytes:
    return bytes([kind, 2 + len(body)]) + body


# --- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "length", "toa"),
    [
        (254, 8, True),  # lvs-ipv4
        (254, 20, True),  # dpvs-ipv6
        (253, 20, True),  # lvs-ipv6
        (254, 13, False),  # AccECN
        (254, 4, False),  # an experiment id and nothing else (a TFO cookie request)
        (253, 8, False),  # no 253 variant has length 8
        (254, 3, True),  # too short for an experiment id: an undocumented TOA-kind option
        (200, 13, True),  # kind 200 has no other use: a broken TOA
        (28, 4, False),  # User Timeout
        (28, 7, True),  # Alibaba CDN
        (2, 4, False),  # not a TOA kind at all
    ],
)
def test_registry_claims(kind, length, toa):
    assert DEFAULT_REGISTRY.claims(kind, length) is toa


def test_user_added_kind_has_no_other_use():
    reg = ToaRegistry.from_spec(["+77"])
    assert reg.claims(77, 13) and reg.claims(77, 8)


@pytest.mark.parametrize("exid", [0xACC0, 0xACC1, 0x1234, 0xFFFF, 0x0000])
def test_any_experiment_id_of_no_toa_length_is_an_experiment(exid):
    opts = _opt(254, exid.to_bytes(2, "big") + bytes(9)) + b"\x01\x01\x01"
    r = dissect_tcp_options(opts)
    assert not r.options and not r.all_experts() and r.client_ip is None
    node = r.tree.children[0]
    assert node.name == "tcp.options.experimental"
    assert node.find("tcp.options.experimental.exid").value == exid


def test_accecn_counters_in_each_order():
    r = dissect_tcp_options(_opt(254, bytes.fromhex("acc1" "000001" "000002" "000003")))
    node = r.tree.children[0]
    assert "Accurate ECN - Order 1" in node.label
    got = {c.name.rsplit(".", 1)[1]: c.value for c in node.children if "acc_ecn" in c.name}
    assert got == {"ee1b": 1, "eceb": 2, "ee0b": 3}


def test_short_253_254_option_is_still_an_unknown_layout():
    r = dissect_tcp_options(_opt(254, b"\x01") + b"\x01")
    (o,) = r.options
    assert [e.code for e in o.experts] == ["toa.unknown_layout"]
    assert "too short for an RFC 6994 experiment id" in o.experts[0].message


def test_cut_accecn_option_is_not_a_truncated_toa():
    opts = b"\x01\x01" + _opt(254, bytes.fromhex("acc0000001000000000000"))
    r = dissect_tcp_options(opts[:8], wire_length=len(opts))
    assert not r.options
    r = dissect_tcp_options(opts[:8])  # broken walk
    assert not r.options and [e.code for e in r.all_experts()] == ["toa.walk_broken"]


# --- tcpdump's public captures, against tshark -----------------------------------------------


def _ours(path: Path) -> list[list[tuple]]:
    """Per frame: (exid, acc_ecn counters, tfo cookie) of each experimental option; TOAs."""
    out = []
    for lt, frame in read_frames_lt(path):
        tcp = next(layer for layer in dissect_frame(frame, lt) if layer.name == "tcp")
        opts = tcp.find("tcp.options")
        rows = []
        for node in opts.children if opts else []:
            assert node.name != "toa", node.label
            exid = node.find("tcp.options.experimental.exid")
            if exid is None:
                continue
            acc = tuple(
                str(node.find(f"tcp.options.acc_ecn.{n}").value)
                if node.find(f"tcp.options.acc_ecn.{n}") is not None
                else ""
                for n in ("ee0b", "eceb", "ee1b")
            )
            rows.append((f"0x{exid.value:04x}", acc))
        out.append(rows)
    return out


def _theirs(path: Path) -> list[list[tuple]]:
    fields = [
        "tcp.options.experimental.exid",
        "tcp.options.acc_ecn.ee0b",
        "tcp.options.acc_ecn.eceb",
        "tcp.options.acc_ecn.ee1b",
    ]
    args = ["-r", str(path), "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in fields:
        args += ["-e", f]
    out = []
    for line in run_tshark(args).splitlines():
        cols = [c.split("|") if c else [] for c in line.split("\t")]
        exids = cols[0]
        acc = [c + [""] * (len(exids) - len(c)) for c in cols[1:]]
        out.append([(x, (acc[0][i], acc[1][i], acc[2][i])) for i, x in enumerate(exids)])
    return out


@pytest.mark.system
@pytest.mark.parametrize("path", [ACCECN, TFO], ids=lambda p: p.name)
def test_public_experimental_options_match_tshark(path):
    require_tool("tshark")
    ours, theirs = _ours(path), _theirs(path)
    assert len(ours) == len(theirs) and any(ours)
    assert ours == theirs


def test_public_accecn_is_no_toa_in_the_flow_table():
    a = analyze(ACCECN)
    assert list(a.flows["method"]) == ["none"]
    assert not [f for f in a.findings["code"] if str(f).startswith("toa.")]


@pytest.mark.parametrize("path", [ACCECN, TFO], ids=lambda p: p.name)
def test_public_experimental_capture_passes_fail_on_error(path):
    env = dict(os.environ, COLUMNS="200")
    res = subprocess.run(
        [sys.executable, "-m", "pcapip", "analyze", "--fail-on", "error", str(path)],
        capture_output=True, cwd=ROOT, env=env, timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert b"toa" not in res.stdout.split(b"\n", 1)[1]
