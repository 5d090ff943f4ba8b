"""``pcapip tui --vxlan-port``: VXLAN on a port other than 4789, opened in the rows and in
the detail pane (Textual's pilot, the real App).

The expected connections are the generator's record (``tunnel-vxlan-8472.expect.json``),
the packets of each flow tshark's selection with ``-d udp.port==8472,vxlan``, and the
bytes of the marked field the frame as dpkt reads it: none of them is the TUI.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from tools import require_tool
from tui_pilot import PCAPS, settle, wait_loaded

import pcapip
from pcapip.cli.show import flow_display_filter
from pcapip.tui.app import PcapipApp
from pcapip.tui.model import hostport
from pcapip.tui.widgets.packet import PacketTree

CAPTURE = PCAPS / "tunnel-vxlan-8472.pcap"
REPO = Path(__file__).resolve().parent.parent


def _expected() -> list[dict[str, str]]:
    return json.loads(CAPTURE.with_suffix(".expect.json").read_text())


def _shown(app: PcapipApp) -> list[dict[str, str]]:
    """The model's rows in the expect.json shape (tcp rows only: the UDP underlay is none)."""
    m = app.table.model
    out = []
    for pos in range(m.total):
        r = m.record(pos)
        if r["transport"] != "tcp":
            continue
        out.append(
            {
                "tunnel": r["tunnel"],
                "egress": hostport(r["egress_ip"], r["egress_port"]),
                "origin": hostport(r["origin_ip"], r["origin_port"]),
                "client": hostport(r["client_ip"], r["client_port"]),
                "method": r["method"],
            }
        )
    return out


def _key(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
    return sorted(tuple(str(r[k]) for k in ("tunnel", "egress", "origin", "client", "method"))
                  for r in rows)  # fmt: skip


def _tshark_frames(display_filter: str) -> list[int]:
    out = subprocess.run(
        ["tshark", "-r", str(CAPTURE), "-d", "udp.port==8472,vxlan", "-Y", display_filter,
         "-T", "fields", "-e", "frame.number"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [int(x) for x in out.stdout.split()]


def _find(node, name: str):
    if node.data is not None and getattr(node.data, "name", None) == name:
        return node
    for c in node.children:
        hit = _find(c, name)
        if hit is not None:
            return hit
    return None


def test_vxlan_port_opens_the_tunnel_in_rows_and_detail() -> None:
    """With --vxlan-port 8472 the rows are the generator's connections (tunnel vxlan:42);
    each flow's timeline is the frames tshark selects with 8472 decoded as VXLAN, and its
    packet tree holds the VXLAN layer with VNI 42 above the field that carries the client."""
    require_tool("tshark")
    want = _expected()
    analysis = pcapip.analyze(str(CAPTURE), vxlan_ports=(8472,))

    async def go() -> None:
        app = PcapipApp(str(CAPTURE), vxlan_ports=(8472,))
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_loaded(pilot)
            assert _key(_shown(app)) == _key(want)
            checked = 0
            for flow in analysis.flows[analysis.flows.transport == "tcp"]["flow"].tolist():
                app.table.filter(f"flow=={flow}")
                await settle(pilot)
                det = app.main.details.detail
                assert det is not None and det.rec["flow"] == flow
                frames = [e.frame for e in det.timeline]
                assert frames == _tshark_frames(flow_display_filter(analysis, flow)), flow
                assert len(frames) >= 5  # handshake, request, reply, FINs
                assert det.packets, flow
                tree = app.query_one("#tree", PacketTree)
                vni = _find(tree.root, "vxlan.vni")
                assert vni is not None and vni.data.value == 42, flow
                focus = tree.cursor_node
                assert focus is not None and focus.data.name in ("toa", "proxy"), flow
                checked += 1
            assert checked == len(want)

    asyncio.run(go())


def test_without_the_port_the_tunnel_stays_closed() -> None:
    """The control: the same capture without --vxlan-port shows no VXLAN tenant and none of
    the inner connections (UDP 8472 is only UDP), as analyze without it."""

    async def go() -> None:
        app = PcapipApp(str(CAPTURE))
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_loaded(pilot)
            assert app.table.model.total == len(pcapip.analyze(str(CAPTURE)).flows) > 0
            assert _shown(app) == []
            tunnels = {app.table.model.record(p)["tunnel"] for p in range(app.table.model.total)}
            assert "vxlan:42" not in tunnels

    asyncio.run(go())


def test_cli_takes_vxlan_port() -> None:
    """``pcapip tui --vxlan-port`` is the option analyze/show/extract/live have: listed in
    the help, and a port out of range is one line and status 2 (before any terminal)."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pcapip", "tui", *args],
            capture_output=True, text=True, timeout=60, cwd=REPO,
        )  # fmt: skip

    assert "--vxlan-port" in cli("--help").stdout
    r = cli("--vxlan-port", "70000", str(CAPTURE))
    assert r.returncode == 2 and "--vxlan-port" in r.stderr and "Traceback" not in r.stderr
