"""``pcapip show``: the field tree and hex dump of a packet, or of a flow's header packets."""

from __future__ import annotations

from typing import Any

import click

from pcapip.cli.flowpackets import first_packets
from pcapip.cli.options import vxlan_port_option
from pcapip.cli.output import check_input
from pcapip.decode.tunnels import tenant, tunnel_display_filter
from pcapip.errors import CaptureError, UsageError


def read_frames(path: str, wanted: set[int]) -> dict[int, tuple[bytes, int]]:
    """Frames by 1-based number: {number: (bytes, linktype)}; stops once all are found."""
    from pcapip.sources import open_capture

    out: dict[int, tuple[bytes, int]] = {}
    if not wanted:
        return out
    last = max(wanted)
    with open_capture(path) as src:
        try:
            for batch in src:
                first = batch.first_frame
                for n in wanted:
                    i = n - first
                    if 0 <= i < len(batch):
                        out[n] = (batch.frame_bytes(i), int(batch.linktype[i]))
                if first + len(batch) > last:
                    break
        except CaptureError:
            if len(out) < len(wanted):
                raise
    return out


def _payload_span(tree: list) -> tuple[int, int] | None:
    """(offset, length) of the PROXY subtree or of the TCP options holding a TOA, if any."""
    for layer in tree:
        node = layer.find("proxy")
        if node is not None:
            return node.offset, node.length
    for layer in tree:
        for node in layer.walk():
            if node.name.startswith("toa") and node.length:
                return node.offset, node.length
    return None


def render_packet(
    number: int,
    frame: bytes,
    linktype: int,
    registry,
    *,
    proxy_offset: int | None = None,
    udp_ports: dict[int, int] | None = None,
) -> str:
    from pcapip.dissect import dissect_frame, hexdump

    layers = dissect_frame(
        frame, linktype, registry=registry, proxy_offset=proxy_offset, udp_ports=udp_ports
    )
    parts = [f"Packet {number}"]
    parts.extend(layer.render() for layer in layers)
    parts.append("")
    parts.append(hexdump(frame, highlight=_payload_span(layers)))
    return "\n".join(parts)


def _reassembled(frames: dict[int, tuple[bytes, int]], numbers: list[int]) -> bytes | None:
    """The stream-start bytes spread over several segments, ordered by sequence number."""
    import dpkt

    from pcapip.flows.reassembly import StreamStart, seq_offset

    segs = []
    for n in numbers:
        data, linktype = frames[n]
        try:
            if linktype == 1:
                ip = dpkt.ethernet.Ethernet(data).data
            elif linktype in (101, 12, 14):
                ip = dpkt.ip.IP(data) if data[0] >> 4 == 4 else dpkt.ip6.IP6(data)
            else:
                return None
            tcp = ip.data
            if not isinstance(tcp, dpkt.tcp.TCP):
                return None
            segs.append((tcp.seq, bytes(tcp.data), n))
        except (dpkt.UnpackError, IndexError, AttributeError):
            return None
    if not segs:
        return None
    base = min(segs, key=lambda s: s[0])[0]
    st = StreamStart()
    for seq, payload, n in segs:
        st.add(seq_offset(seq, base), payload, n)
    return bytes(st.prefix)


def display_filter(row: dict[str, Any], *, with_time: bool = False) -> str:
    """The Wireshark display filter that selects a flow's packets by its addresses and ports
    (independent of tshark's ``tcp.stream`` numbering, so it works on any copy of the
    capture); ``with_time`` adds the flow's time span, for ports reused by another flow."""
    ip = "ipv6" if ":" in row["egress_ip"] else "ip"
    l4 = row["transport"]
    text = (
        f"{ip}.addr=={row['egress_ip']} && {ip}.addr=={row['origin_ip']} && "
        f"{l4}.port=={row['egress_port']} && {l4}.port=={row['origin_port']}"
    )
    tunnel = tunnel_display_filter(row.get("tunnel") or "")
    if tunnel:
        text += f" && {tunnel}"
    if with_time:
        text += f" && frame.time_epoch>={_epoch(row['start'])}"
        text += f" && frame.time_epoch<={_epoch(row['end'])}"
    return text


def _epoch(ns: int) -> str:
    sec, frac = divmod(ns, 1_000_000_000)
    return f"{sec}.{frac:09d}"


def flow_display_filter(a: Any, flow: int) -> str:
    """:func:`display_filter` of flow ``flow`` of analysis ``a``, with its time span only when
    another flow has the same addresses and ports (a reused port)."""
    t = a.table
    key = ("transport", "egress_ip", "egress_port", "origin_ip", "origin_port")
    cols = [t.column(c, 0, len(t)) for c in key]
    cols.append([tenant(x or "") for x in t.column("tunnel", 0, len(t))])
    tuples = list(zip(*cols, strict=True))
    row = _flow_row(a, flow)
    return display_filter(row, with_time=tuples.count(tuples[flow - 1]) > 1)


def _flow_row(a: Any, flow: int) -> dict[str, Any]:
    """Flow ``flow``'s row as Python values (None where missing; times in nanoseconds)."""
    from pcapip.flows.columns import COLUMNS

    return {c: a.table.column(c, flow - 1, flow)[0] for c in COLUMNS}


def _hostport(ip: str | None, port: int | None) -> str:
    if ip is None:
        return "-"
    host = f"[{ip}]" if ":" in ip else ip
    return host if port is None else f"{host}:{port}"


def _print_flow_head(a: Any, flow: int, row: dict[str, Any]) -> None:
    from pcapip.flows.findings import CATALOGUE

    click.echo(
        f"Flow {flow}: {row['transport']} {_hostport(row['egress_ip'], row['egress_port'])} -> "
        f"{_hostport(row['origin_ip'], row['origin_port'])}  method={row['method']} "
        f"status={row['status']}  packets={row['packets']}"
        + (f"  tunnel={row['tunnel']}" if row.get("tunnel") else "")
    )
    if row["client_ip"] is not None:
        click.echo(f"Client: {_hostport(row['client_ip'], row['client_port'])}")
    click.echo(f"Wireshark display filter: {flow_display_filter(a, flow)}")
    for f in a.table.findings:
        if f.flow == flow:
            where = f" (packet {f.frame})" if f.frame is not None else ""
            click.echo(f"  [{CATALOGUE[f.code].level.label}] {f.code}{where}: {f.message}")


@click.command(name="show")
@click.argument("capture", metavar="CAPTURE")
@click.option("--flow", "flow", type=int, default=None, help="Flow ID from 'pcapip analyze'.")
@click.option("--packet", "packet", type=int, default=None, help="1-based packet number.")
@click.option(
    "--toa-kind",
    "toa_kinds",
    multiple=True,
    metavar="N",
    help="TOA option kind (N restricts, +N adds). Repeatable.",
)
@vxlan_port_option
def command(
    capture: str,
    flow: int | None,
    packet: int | None,
    toa_kinds: tuple[str, ...],
    vxlan_ports: tuple[int, ...],
) -> int:
    """Print the Wireshark-style tree and hex dump of a packet, or of the packets that
    carried a flow's client address (TOA segments, PROXY header segments)."""
    from pcapip.flows.run import registry_for

    if (flow is None) == (packet is None):
        raise UsageError("give exactly one of --flow ID or --packet N")
    check_input(capture)
    if capture == "-" and flow is not None:
        raise UsageError("--flow needs a capture file (it is read twice), not standard input")
    from pcapip.decode.tunnels import udp_tunnel_ports

    registry = registry_for(list(toa_kinds) or None)
    ports = udp_tunnel_ports(vxlan_ports)
    if packet is not None:
        if packet < 1:
            raise UsageError("--packet numbers start at 1")
        frames = read_frames(capture, {packet})
        if packet not in frames:
            raise UsageError(f"{capture}: has no packet {packet}")
        data, linktype = frames[packet]
        click.echo(render_packet(packet, data, linktype, registry, udp_ports=ports))
        return 0

    from pcapip import analyze

    a = analyze([capture], toa_kinds=list(toa_kinds) or None, vxlan_ports=vxlan_ports)
    if flow is None or flow < 1 or flow > len(a.table):
        raise UsageError(f"{capture}: has no flow {flow} (flows are 1..{len(a.table)})")
    row = _flow_row(a, flow)
    _print_flow_head(a, flow, row)
    numbers = [n for _, n in a.header_frames(flow)]
    if numbers:
        _print_header_packets(capture, row, numbers, registry, ports)
    else:
        click.echo(
            "No packet of this flow carried a client address that could be read (a TOA "
            "option or a PROXY header); what the origin received instead:"
        )
        one = a.flows[a.flows["flow"] == flow]
        picked, missing = first_packets(capture, one, registry.kinds, ports)
        if missing:
            click.echo(f"Not in the capture: {', '.join(missing)}.")
        for n, label, data, linktype in picked:
            click.echo("")
            click.echo(f"[{label}]")
            click.echo(render_packet(n, data, linktype, registry, udp_ports=ports))
    for err in a.errors:
        click.echo(f"pcapip: error: {err}", err=True)
    return 2 if a.errors else 0


def _print_header_packets(
    capture: str, row: dict[str, Any], numbers: list[int], registry, ports: dict[int, int]
) -> None:
    """The packets that carried the client address, and a PROXY header split over several
    segments reassembled."""
    frames = read_frames(capture, set(numbers))
    for n in numbers:
        if n in frames:
            data, linktype = frames[n]
            click.echo("")
            click.echo(render_packet(n, data, linktype, registry, udp_ports=ports))
    proxy_frames = [n for n in numbers if n in frames]
    if row["method"] in ("ppv1", "ppv2") and len(proxy_frames) > 1:
        stream = _reassembled(frames, proxy_frames)
        if stream:
            from pcapip.dissect import hexdump, parse_proxy

            r = parse_proxy(stream)
            click.echo("")
            click.echo(
                f"Reassembled stream start ({len(stream)} bytes from packets "
                f"{', '.join(map(str, proxy_frames))})"
            )
            if r.tree is not None:
                click.echo(r.tree.render())
            click.echo(hexdump(stream, highlight=(0, r.length) if r.length else None))
