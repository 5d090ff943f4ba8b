"""``pcapip analyze``: every flow's egress address, its real client, and what is wrong."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from pcapip.cli.collector import collector_off
from pcapip.cli.options import (
    attempt_timeout_option,
    fail_on_option,
    force_option,
    rules_option,
    toa_kind_option,
    trusted_option,
    vxlan_port_option,
)
from pcapip.cli.output import FORMATS, check_analysis_output, check_input
from pcapip.errors import UsageError

if TYPE_CHECKING:
    from pcapip.flows.findings import Level


class _Progress:
    """A progress bar on stderr that appears only when reading takes more than a moment."""

    def __init__(self, enabled: bool, delay: float = 0.5) -> None:
        self.enabled = enabled
        self.delay = delay
        self.t0 = time.monotonic()
        self.bar: Any = None
        self.task: Any = None
        self.capture = -1

    def __call__(self, capture: int, frames: int, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.monotonic() - self.t0 < self.delay:
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[frames]} packets"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.start()
        if capture != self.capture:
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(f"capture {capture + 1}", total=total, frames=0)
            self.capture = capture
        self.bar.update(self.task, completed=done, frames=frames)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@click.command(name="analyze")
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE [CAPTURE...]")
@click.option(
    "--by",
    type=click.Choice(["flow", "egress", "client", "origin", "rule"]),
    default="flow",
    show_default=True,
    help="One row per flow, per egress IP, per client IP, per origin ip:port (listener), or "
    "per forwarding rule (with --rules); groups count their problem flows and findings.",
)
@click.option(
    "--filter",
    "filter_expr",
    metavar="EXPR",
    default=None,
    help="Only flows matching EXPR, in the TUI's filter language: method==ppv2, "
    "'client_ip in 10.0.0.0/8', finding:origin.rejected, has:client_ip, not …, and/or.",
)
@click.option(
    "--problems",
    is_flag=True,
    help="Only flows with a warning or error finding (with --filter: both).",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Table format: each finding's full meaning and fix, not one line.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Output format (default: table on a terminal, else csv; -o FILE picks by extension).",
)
@click.option(
    "-o",
    "--output",
    default=None,
    metavar="FILE",
    help="Write to FILE instead of stdout (checked before the capture is read).",
)
@trusted_option
@rules_option
@toa_kind_option
@attempt_timeout_option
@vxlan_port_option
@fail_on_option
@force_option
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Read the captures on this Dask cluster (tcp://HOST:PORT), a file per task; the "
    "output is that of one read. Captures may be fsspec URLs (s3://, gs://, file://).",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    metavar="N",
    help="Read the captures on a Dask cluster of N worker processes started on this machine.",
)
@click.option(
    "--group-by-dir",
    is_flag=True,
    help="Captures in different directories are different vantage points: their "
    "connections are never joined (each directory is its own recording).",
)
@click.option(
    "--max-rows",
    type=int,
    default=500,
    show_default=True,
    help="Rows of the table format to print (0: all).",
)
def command(
    captures: tuple[str, ...],
    by: str,
    filter_expr: str | None,
    problems: bool,
    explain: bool,
    fmt: str | None,
    output: str | None,
    trusted: tuple[str, ...],
    rules: str | None,
    toa_kinds: tuple[str, ...],
    attempt_timeout: float | None,
    vxlan_ports: tuple[int, ...],
    fail_on: str | None,
    force: bool,
    no_progress: bool,
    scheduler: str | None,
    workers: int | None,
    group_by_dir: bool,
    max_rows: int,
) -> int:
    """Map every flow's egress address to its real client (TOA / PROXY protocol).

    CAPTURE is a pcap or pcapng file (gzip, zstd or lz4 allowed); '-' reads standard input
    (tcpdump -w - | pcapip analyze -). Several captures are one recording, read in the
    order of their first packets (rotated names such as cap, cap1, cap10, cap2 rarely sort
    in time); a warning says when that was not the order given. Exit status: 0 ok, 1
    findings at --fail-on level, 2 bad input.
    """
    if captures.count("-") > 1:
        raise UsageError("standard input ('-') can be read only once")
    for c in captures:
        check_input(c)
    reads = [*captures, *([rules] if rules else [])]
    fmt = check_analysis_output(fmt, output, max_rows, force, reads)
    selecting = bool(filter_expr and filter_expr.strip()) or problems
    if selecting:
        check_filter(filter_expr or "")
    if by == "rule" and rules is None:
        raise UsageError("--by rule needs the forwarding rules: --rules FILE")
    if scheduler is not None and workers is not None:
        raise UsageError("--scheduler and --workers exclude each other")
    if scheduler is not None or workers is not None:
        _quiet_dask()
    showing = not no_progress and sys.stderr.isatty()
    progress = _Progress(enabled=showing)
    # the engine's modules load and the read loop runs without the cyclic collector
    # (pcapip.cli.collector); the writers run with it as before
    with collector_off():
        from pcapip import analyze
        from pcapip.report.write import write_analysis

        # one path for every format: the Analysis builds no frame (and imports no pandas)
        # until one is asked for, and the per-flow CSV / JSON are written from its table
        try:
            a = analyze(
                list(captures),
                trusted=list(trusted) or None,
                rules=rules,
                toa_kinds=list(toa_kinds) or None,
                attempt_timeout=attempt_timeout,
                vxlan_ports=vxlan_ports,
                progress=progress,
                scheduler=scheduler,
                workers=workers,
                group_by_dir=group_by_dir,
                cluster_progress=_cluster_line if showing else None,
            )
        finally:
            progress.close()
            if showing and (scheduler or workers):
                click.echo("", err=True)
    if selecting:
        a = a.filter(filter_expr or "", problems=problems)
    write_analysis(a, fmt, output, by=by, max_rows=max_rows, explain=explain, force=force)
    _say_oddities(a.table, fmt)
    return _exit_status(a.worst_level(), a.errors, fail_on)


def _quiet_dask() -> None:
    """The command says what went wrong in one line: Dask's own log records (and the
    tracebacks its threads log while a lost cluster closes, even after the analysis has
    ended) are not for this process's stderr."""
    import logging

    for name in ("distributed", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def _cluster_line(p: Any) -> None:
    """A cluster run's progress, one line rewritten in place (``ClusterProgress.line``), cut
    to the terminal's width: a line that wrapped could not be rewritten by a carriage return."""
    import shutil

    text = f"pcapip: cluster: {p.line()}"
    width = shutil.get_terminal_size().columns - 1
    if len(text) > width:
        text = text[: max(width - 1, 0)] + "…"
    click.echo(f"\r{text}\x1b[K", err=True, nl=False)


def check_filter(expr: str) -> None:
    """A bad --filter is a usage error (one line, the column named) before any reading."""
    from pcapip.report.filters import FilterError, parse

    try:
        parse(expr)
    except FilterError as exc:
        raise UsageError(f"--filter: {exc}") from None


def _say_oddities(table: Any, fmt: str) -> None:
    """Every warning as one stderr line; the unchecked-spoofing note too when a person reads
    stderr and the report itself (the table's header) does not say it."""
    for w in table.warnings:
        click.echo(f"pcapip: warning: {w}", err=True)
    if fmt != "table" and not table.trusted_checked and sys.stderr.isatty():
        from pcapip.report.notes import spoofing_line

        note = spoofing_line(table.announcers)
        if note:
            click.echo(f"pcapip: note: {note}", err=True)


def _exit_status(worst: Level | None, errors: list, fail_on: str | None) -> int:
    """2 after capture damage (reported on stderr), 1 for findings at --fail-on level, else 0."""
    from pcapip.flows.findings import Level

    for err in errors:
        click.echo(f"pcapip: error: {err}", err=True)
    if errors:
        return 2
    if fail_on is not None:
        limit = Level.parse(fail_on)
        if worst is not None and worst >= limit:
            return 1
    return 0
