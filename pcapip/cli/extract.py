"""``pcapip extract``: the packets of chosen flows, written as a capture to open in Wireshark.

The flows are chosen by number or with the filter language, from the same analysis
``pcapip analyze`` prints; their packets are found again by a second read of the
capture: same transport and endpoints (either direction) between the flow's first
and last packet, which also keeps apart two flows that reused one port pair.
Frames are copied byte for byte with their timestamps (nanoseconds) and link type.
"""

from __future__ import annotations

import os
import struct
from typing import IO, TYPE_CHECKING

import click

from pcapip.cli.analyze import check_filter
from pcapip.cli.flowpackets import flow_packets
from pcapip.cli.options import force_option, toa_kind_option, trusted_option, vxlan_port_option
from pcapip.cli.output import check_input, check_output
from pcapip.errors import UsageError
from pcapip.report.atomic import atomic_path

if TYPE_CHECKING:
    import pandas as pd


@click.command(name="extract")
@click.argument("capture", metavar="CAPTURE")
@click.option("--flow", "flows", type=int, multiple=True, metavar="N",
              help="Flow number from 'pcapip analyze'. Repeatable.")
@click.option("--filter", "filter_expr", metavar="EXPR", default=None,
              help="Flows matching EXPR (the filter language of analyze --filter and the TUI).")
@click.option("--problems", is_flag=True, help="Flows with a warning or error finding.")
@click.option("-w", "--write", "out", required=True,
              metavar="OUT", help="Capture to write: pcap, or pcapng when OUT ends in .pcapng.")
@trusted_option
@toa_kind_option
@vxlan_port_option
@force_option
def command(
    capture: str,
    flows: tuple[int, ...],
    filter_expr: str | None,
    problems: bool,
    out: str,
    trusted: tuple[str, ...],
    toa_kinds: tuple[str, ...],
    vxlan_ports: tuple[int, ...],
    force: bool,
) -> int:
    """Write the packets of the chosen flows (--flow N…, --filter EXPR, --problems; given
    together, flows meeting all of them) to OUT, byte for byte with their timestamps and
    link type, e.g. to open them in Wireshark. Flow numbers are those of 'pcapip analyze'."""
    if not flows and not filter_expr and not problems:
        raise UsageError("choose flows: --flow N (repeatable), --filter EXPR or --problems")
    if capture == "-":
        raise UsageError("extract reads the capture twice: give a file, not standard input")
    check_input(capture, stdin_ok=False)
    if out == "-":
        raise UsageError("-w: give a file (a capture is binary)")
    check_output(out, "-w", force, reads=[capture])
    if filter_expr:
        check_filter(filter_expr)
    from pcapip import analyze
    from pcapip.report.filters import FilterError

    a = analyze(
        [capture],
        trusted=list(trusted) or None,
        toa_kinds=list(toa_kinds) or None,
        vxlan_ports=vxlan_ports,
    )
    for err in a.errors:
        click.echo(f"pcapip: error: {err}", err=True)
    bad = sorted(n for n in flows if not 1 <= n <= len(a))
    if bad:
        raise UsageError(f"{capture}: has no flow {bad[0]} (flows are 1..{len(a)})")
    try:
        chosen = a.filter(filter_expr or "", problems=problems).flows
    except FilterError as exc:
        raise UsageError(f"--filter: {exc}") from None
    if flows:
        chosen = chosen[chosen["flow"].isin(flows)]
    with atomic_path(out, force=force) as tmp:  # whole or not at all
        written = write_flows(capture, chosen, tmp, vxlan_ports, pcapng=_is_pcapng(out))
    click.echo(
        f"{out}: {written} packets of {len(chosen)} flow(s)"
        + (f" ({', '.join(map(str, chosen['flow'].head(10)))}{' …' if len(chosen) > 10 else ''})"
           if len(chosen) else ""),
        err=True,
    )
    counted = int(chosen["packets"].sum())
    if written != counted:  # the flow stage and the packet walk disagree: say so, never quietly
        click.echo(
            f"pcapip: warning: {out}: wrote {written} packets, but analyze counted {counted} "
            "for these flows",
            err=True,
        )
    return 2 if a.errors else 0


def _is_pcapng(out: str) -> bool:
    return out.lower().endswith(".pcapng")


def write_flows(
    capture: str,
    chosen: pd.DataFrame,
    out: str,
    vxlan_ports: tuple[int, ...] = (),
    pcapng: bool | None = None,
) -> int:
    """Copy the packets of the ``chosen`` flow rows from ``capture`` to ``out`` as they are
    read (memory stays one batch); returns how many. A pcap holds one link type: for
    several, OUT must be pcapng (the half-written pcap is removed)."""
    if pcapng is None:
        pcapng = _is_pcapng(out)
    writer = (_PcapngWriter if pcapng else _PcapWriter)(out)
    try:
        from pcapip.decode.tunnels import udp_tunnel_ports

        for batch, p, m in flow_packets(capture, chosen, tunnel_ports=udp_tunnel_ports(vxlan_ports)):
            for i in m["i"].tolist():
                writer.add(int(p.ts_ns[i]), int(p.origlen[i]), int(p.linktype[i]),
                           batch.frame_bytes(i))
        writer.close()
    except BaseException:
        writer.close()
        os.unlink(out)
        raise
    return writer.count


class _PcapWriter:
    """libpcap with nanosecond timestamps (magic a1b23c4d), one link type per file."""

    def __init__(self, path: str) -> None:
        self.fh: IO[bytes] = open(path, "wb")  # noqa: SIM115 (closed by close())
        self.link: int | None = None
        self.count = 0

    def add(self, ts: int, origlen: int, link: int, data: bytes) -> None:
        if self.link is None:
            self.link = link
            self.fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, link))
        elif link != self.link:
            raise UsageError(
                f"the chosen flows' packets have link types {self.link} and {link}; a pcap "
                "file holds one: write OUT.pcapng"
            )
        sec, ns = divmod(ts, 1_000_000_000)
        self.fh.write(struct.pack("<IIII", sec, ns, len(data), origlen))
        self.fh.write(data)
        self.count += 1

    def close(self) -> None:
        if self.link is None and not self.fh.closed:  # nothing chosen: still a valid file
            self.fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
        self.fh.close()


class _PcapngWriter:
    """pcapng: an interface (nanosecond if_tsresol) for each link type as it first appears."""

    def __init__(self, path: str) -> None:
        self.fh: IO[bytes] = open(path, "wb")  # noqa: SIM115 (closed by close())
        self.iface: dict[int, int] = {}
        self.count = 0
        self.fh.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))

    def add(self, ts: int, origlen: int, link: int, data: bytes) -> None:
        if link not in self.iface:
            self.iface[link] = len(self.iface)
            tsresol = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
            self.fh.write(_block(1, struct.pack("<HHI", link, 0, 0) + tsresol))
        head = struct.pack("<IIIII", self.iface[link], ts >> 32, ts & 0xFFFFFFFF, len(data),
                           origlen)
        self.fh.write(_block(6, head + data))
        self.count += 1

    def close(self) -> None:
        self.fh.close()


def _block(kind: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", kind, n) + body + struct.pack("<I", n)
