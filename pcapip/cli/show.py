"""``pcapip show``: the field tree and hex dump of a packet, or of a flow's header packets."""

from __future__ import annotations

import os

import click

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
    number: int, frame: bytes, linktype: int, registry, *, proxy_offset: int | None = None
) -> str:
    from pcapip.dissect import dissect_frame, hexdump

    layers = dissect_frame(frame, linktype, registry=registry, proxy_offset=proxy_offset)
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
def command(capture: str, flow: int | None, packet: int | None, toa_kinds: tuple[str, ...]) -> int:
    """Print the Wireshark-style tree and hex dump of a packet, or of the packets that
    carried a flow's client address (TOA segments, PROXY header segments)."""
    from pcapip.flows.run import registry_for

    if (flow is None) == (packet is None):
        raise UsageError("give exactly one of --flow ID or --packet N")
    if capture != "-" and not os.path.exists(capture):
        raise UsageError(f"{capture}: no such file")
    if capture == "-" and flow is not None:
        raise UsageError("--flow needs a capture file (it is read twice), not standard input")
    registry = registry_for(list(toa_kinds) or None)
    if packet is not None:
        if packet < 1:
            raise UsageError("--packet numbers start at 1")
        frames = read_frames(capture, {packet})
        if packet not in frames:
            raise UsageError(f"{capture}: has no packet {packet}")
        data, linktype = frames[packet]
        click.echo(render_packet(packet, data, linktype, registry))
        return 0

    from pcapip.report.analysis import analyze

    a = analyze([capture], toa_kinds=list(toa_kinds) or None)
    f = a.flows
    if flow is None or flow < 1 or flow > len(f):
        raise UsageError(f"{capture}: has no flow {flow} (flows are 1..{len(f)})")
    row = f.iloc[flow - 1]

    def v(x):
        return "" if x is None or (not isinstance(x, str) and x != x) or x is None else x

    click.echo(
        f"Flow {flow}: {row['transport']} {row['egress_ip']}:{row['egress_port']} -> "
        f"{row['origin_ip']}:{row['origin_port']}  method={row['method']} status={row['status']}"
    )
    if row["client_ip"] is not None and row["client_ip"] == row["client_ip"]:
        click.echo(f"Client: {row['client_ip']}:{v(row['client_port'])}")
    fs = a.findings[a.findings["flow"] == flow]
    for r in fs.itertuples(index=False):
        where = f" (packet {r.packet})" if r.packet is not None and r.packet == r.packet else ""
        click.echo(f"  [{r.severity}] {r.code}{where}: {r.message}")
    numbers = [n for _, n in a.header_frames(flow)]
    if not numbers:
        click.echo("No packet of this flow carried a TOA option or a PROXY header.")
        for err in a.errors:
            click.echo(f"pcapip: error: {err}", err=True)
        return 2 if a.errors else 0
    frames = read_frames(capture, set(numbers))
    for n in numbers:
        if n in frames:
            data, linktype = frames[n]
            click.echo("")
            click.echo(render_packet(n, data, linktype, registry))
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
    for err in a.errors:
        click.echo(f"pcapip: error: {err}", err=True)
    return 2 if a.errors else 0
