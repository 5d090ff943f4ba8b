"""``pcapip live``: watch an interface and see, connection by connection, who the real clients are."""

from __future__ import annotations

import sys
from typing import Any

import click

from pcapip.cli.options import (
    attempt_timeout_option,
    fail_on_option,
    force_option,
    rules_option,
    toa_kind_option,
    trusted_option,
    vxlan_port_option,
)
from pcapip.cli.output import (
    check_analysis_output,
    check_max_rows,
    check_output,
    extension_format,
)
from pcapip.errors import UsageError

FORMATS = ("table", "csv", "json")


def _run_tui(opts: Any) -> int:
    """Hand the capture to the terminal UI, loaded only now: pcapip itself never needs it."""
    try:
        from pcapip.tui.live import run_live
    except ImportError as exc:
        if getattr(exc, "name", None) not in ("pcapip.tui", "pcapip.tui.live"):
            raise
        raise UsageError(
            "--tui needs pcapip's terminal UI (pcapip.tui, installed with pcapip from its "
            "source tree), which is not installed here; use --format table for a live view"
        ) from None
    return int(run_live(opts) or 0)


def _check_outputs(
    fmt: str | None,
    stream: str,
    output: str | None,
    write: str | None,
    max_rows: int,
    force: bool = False,
) -> str:
    """Refuse unwritable -w/-o and bad --max-rows before the capture starts; returns the
    summary's format for -o: its extension's (--format names the stream), else --format."""
    check_max_rows(max_rows)
    check_output(write, "-w", force)
    if output == "-" and stream != "table":
        raise UsageError(
            f"-o -: the summary cannot share stdout with the {stream} stream "
            "(without -o it goes to stderr; -o FILE writes it to a file)"
        )
    if not output:
        return "table"
    by_ext = None if output == "-" else extension_format(output)
    return check_analysis_output(by_ext or fmt, output, max_rows, force)


def _write_summary(
    a: Any,
    fmt: str,
    summary_fmt: str,
    output: str | None,
    by: str,
    max_rows: int,
    force: bool = False,
) -> None:
    """The final summary: to -o, else after the live view on stdout (table), else on stderr:
    a csv/json stream on stdout stays one schema that loads as a whole."""
    from pcapip.report.write import write_analysis

    if output is not None:
        write_analysis(a, summary_fmt, output, by=by, max_rows=max_rows, force=force)
    elif fmt == "table":
        write_analysis(a, "table", None, by=by, max_rows=max_rows)
    else:
        from rich.console import Console

        from pcapip.report.render import print_report, summary

        console = Console(stderr=True)
        if by == "flow":  # the flows themselves are on stdout
            console.print(summary(a))
        else:
            print_report(a, console, by=by, max_rows=max_rows)


@click.command(name="live")
@click.option(
    "-i",
    "--interface",
    "iface",
    metavar="IFACE",
    help="Interface to capture on (dumpcap -D lists them; 'any' for all).",
)
@click.option(
    "-f",
    "--filter",
    "bpf",
    metavar="BPF",
    help="Capture filter in libpcap syntax, e.g. 'tcp port 443'.",
)
@click.option(
    "--duration",
    type=float,
    metavar="S",
    default=None,
    help="Stop after S seconds (default: until Ctrl-C).",
)
@click.option("-c", "--count", type=int, metavar="N", default=None, help="Stop after N packets.")
@click.option(
    "-w",
    "--write",
    "write",
    metavar="FILE",
    default=None,
    help="Keep the raw capture in FILE (pcapng from dumpcap, pcap from tcpdump), "
    "to re-analyze it later with pcapip analyze or open it in Wireshark.",
)
@click.option(
    "-b",
    "--ring-buffer",
    "ring",
    metavar="KEY:VALUE",
    multiple=True,
    help="With -w FILE: a ring buffer of files as dumpcap names them (FILE_00001_<time>.pcap): "
    "filesize:MB and/or duration:S start a new file, files:N keeps the newest N. "
    "pcapip analyze 'FILE_*' reads them in order as one recording.",
)
@trusted_option
@rules_option
@toa_kind_option
@attempt_timeout_option
@vxlan_port_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="table: live view, then the summary; csv/json: one line per flow as soon as "
    "its client is known, in analyze's columns and flow numbers (default: table on a "
    "terminal, else csv). The final summary of csv/json goes to stderr, or -o.",
)
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    default=None,
    help="Write the final summary to FILE (format by its extension, else --format) "
    "instead of stdout (table) or stderr (csv/json).",
)
@click.option(
    "--flows",
    "flows_file",
    metavar="FILE",
    default=None,
    help="Append the csv/json flow lines to FILE instead of stdout (never truncated; "
    "SIGHUP reopens it, for logrotate).",
)
@click.option(
    "--by",
    type=click.Choice(["flow", "egress", "client", "rule"]),
    default="flow",
    show_default=True,
    help="Final summary: one row per flow, egress IP, client IP or forwarding rule (--rules).",
)
@click.option(
    "--max-rows",
    type=int,
    default=500,
    show_default=True,
    help="Rows of the final table to print (0: all).",
)
@click.option(
    "--max-flows",
    type=int,
    default=100_000,
    show_default=True,
    help="Flows tracked at once; beyond it the oldest end early (finding "
    "capture.flow_limit), so memory stays bounded.",
)
@fail_on_option
@force_option
@click.option(
    "--tool",
    type=click.Choice(["auto", "dumpcap", "tcpdump"]),
    default="auto",
    show_default=True,
    help="Capture program (auto: dumpcap, else tcpdump).",
)
@click.option(
    "-s",
    "--snaplen",
    type=int,
    default=None,
    metavar="BYTES",
    help="Bytes captured per packet (default: the tool's maximum).",
)
@click.option(
    "-B",
    "--buffer-size",
    "buffer_mib",
    type=int,
    default=32,
    show_default=True,
    metavar="MIB",
    help="Kernel capture buffer in MiB: absorbs bursts while analysis "
    "catches up (dropped packets are reported at the end).",
)
@click.option(
    "-D",
    "--list-interfaces",
    "list_ifaces",
    is_flag=True,
    help="List the interfaces the capture tool can open, and exit.",
)
@click.option("--tui", is_flag=True, help="Show the capture in the interactive terminal UI.")
@click.option(
    "--metrics",
    metavar="HOST:PORT",
    default=None,
    help="Serve Prometheus metrics at http://HOST:PORT/metrics while capturing "
    "(pcapip_packets_total, pcapip_flows_total{transport,method,status}, "
    "pcapip_findings_total{code,severity}, pcapip_open_flows, ...).",
)
@click.option(
    "--metrics-egress",
    type=int,
    default=0,
    metavar="N",
    help="With --metrics: also count flows per egress IP, for the first N addresses seen "
    '(the rest as egress_ip="other"), so the series stay bounded.',
)
def command(
    iface: str | None,
    bpf: str | None,
    duration: float | None,
    count: int | None,
    write: str | None,
    ring: tuple[str, ...],
    trusted: tuple[str, ...],
    rules: str | None,
    toa_kinds: tuple[str, ...],
    attempt_timeout: float | None,
    vxlan_ports: tuple[int, ...],
    fmt: str | None,
    output: str | None,
    flows_file: str | None,
    by: str,
    max_rows: int,
    max_flows: int,
    fail_on: str | None,
    force: bool,
    tool: str,
    snaplen: int | None,
    buffer_mib: int,
    list_ifaces: bool,
    tui: bool,
    metrics: str | None,
    metrics_egress: int,
) -> int:
    """Capture on IFACE and map every connection's egress address to its real client.

    Packets are captured by Wireshark's dumpcap (tcpdump when dumpcap is
    missing), so pcapip itself needs no privileges, and analysed by the same
    engine as 'pcapip analyze'. Ctrl-C, --duration or --count end the capture
    and print the summary that 'pcapip analyze' prints for the same packets.
    Exit status: 0 ok, 1 findings at --fail-on level, 2 capture or input errors.
    """
    from pcapip.live.session import LiveOptions, LiveSession
    from pcapip.live.tools import find_tool, list_interfaces

    if list_ifaces:
        t, _ = find_tool(tool)
        for name in list_interfaces(t):
            click.echo(name)
        return 0
    if by == "rule" and rules is None:
        raise UsageError("--by rule needs the forwarding rules: --rules FILE")
    if not iface:
        raise UsageError("pcapip live needs an interface: -i IFACE (pcapip live -D lists them)")
    stream = fmt or ("table" if sys.stdout.isatty() and not flows_file else "csv")
    if flows_file is not None and stream == "table":
        raise UsageError("--flows takes the csv or json lines: add --format csv or json")
    if flows_file is not None:
        check_output(flows_file, "--flows", force)
    summary_fmt = _check_outputs(fmt, stream, output, write, max_rows, force)
    ring_spec = _check_capture(ring, write, snaplen, buffer_mib, metrics)
    opts = LiveOptions(
        iface=iface,
        bpf=bpf,
        duration=duration,
        count=count,
        write=write,
        trusted=list(trusted) or None,
        rules=rules,
        toa_kinds=list(toa_kinds) or None,
        max_flows=max_flows,
        attempt_timeout=attempt_timeout,
        vxlan_ports=vxlan_ports,
        tool=tool,
        snaplen=snaplen,
        buffer_mib=buffer_mib,
        metrics=metrics,
        metrics_egress=metrics_egress,
        ring=ring_spec,
    )
    if tui:
        return _run_tui(opts)
    sink, note = _sink(stream, flows_file)
    result = LiveSession(opts, sink, note=note).run()
    _write_summary(result.analysis, stream, summary_fmt, output, by, max_rows, force)
    if result.error is not None:
        raise result.error
    if fail_on is not None:
        from pcapip.flows.findings import Level

        worst = result.analysis.worst_level()
        if worst is not None and worst >= Level.parse(fail_on):
            return 1
    return 0


def _check_capture(
    ring: tuple[str, ...],
    write: str | None,
    snaplen: int | None,
    buffer_mib: int,
    metrics: str | None,
) -> Any:
    """The capture options checked before anything starts (a bad one is a usage error,
    not a capture that fails later); the ring's spec (or None)."""
    from pcapip.live.ring import RingSpec

    if metrics is not None:
        from pcapip.live.metrics import parse_address

        parse_address(metrics)

    ring_spec = RingSpec.parse(ring)
    if ring_spec is not None and not write:
        raise UsageError("-b needs -w FILE: the ring's files are named after it")
    if snaplen is not None and snaplen < 1:
        raise UsageError("--snaplen must be at least 1")
    if buffer_mib < 1:
        raise UsageError("--buffer-size must be at least 1 MiB")
    return ring_spec


def _sink(fmt: str, flows_file: str | None) -> tuple[Any, Any]:
    """Where the rolling output goes (a live table, or lines to stdout or the appended
    ``--flows`` file) and how notes are shown (None: on stderr)."""
    if fmt == "table":
        from pcapip.live.output import RichSink
        from pcapip.report.write import stdout_console

        console = stdout_console()
        if not console.is_terminal:
            return RichSink(console), None

        def note(message: str) -> None:
            console.print(f"pcapip: {message}", style="yellow", highlight=False, markup=False)

        return RichSink(console), note
    from pcapip.live.output import AppendingFile, LineSink

    target: Any = sys.stdout
    if flows_file is not None:
        try:
            target = AppendingFile(flows_file)
        except OSError as exc:
            raise UsageError(f"--flows {flows_file}: {exc.strerror or exc}") from None
    return LineSink(fmt, target), None
