"""``pcapip analyze``: every flow's egress address, its real client, and what is wrong."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from pcapip.cli.options import fail_on_option, toa_kind_option, trusted_option
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
    type=click.Choice(["flow", "egress", "client"]),
    default="flow",
    show_default=True,
    help="One row per flow, per egress IP, or per client IP.",
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
@toa_kind_option
@fail_on_option
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
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
    fmt: str | None,
    output: str | None,
    trusted: tuple[str, ...],
    toa_kinds: tuple[str, ...],
    fail_on: str | None,
    no_progress: bool,
    max_rows: int,
) -> int:
    """Map every flow's egress address to its real client (TOA / PROXY protocol).

    CAPTURE is a pcap or pcapng file (gzip allowed); '-' reads standard input
    (tcpdump -w - | pcapip analyze -). Several captures are read in order as one
    recording. Exit status: 0 ok, 1 findings at --fail-on level, 2 bad input.
    """
    if captures.count("-") > 1:
        raise UsageError("standard input ('-') can be read only once")
    for c in captures:
        check_input(c)
    fmt = check_analysis_output(fmt, output, max_rows)
    progress = _Progress(enabled=not no_progress and sys.stderr.isatty())
    from pcapip.report.export import write_analysis

    if fmt in ("csv", "tsv", "json") and by == "flow":
        # the fast path: no pandas, rows written straight from the flow table
        from pcapip.flows.run import track_captures

        try:
            table, errors = track_captures(
                list(captures),
                trusted=list(trusted) or None,
                toa_kinds=list(toa_kinds) or None,
                progress=progress,
            )
        finally:
            progress.close()
        write_analysis(table, fmt, output)
        return _exit_status(table.worst_level(), errors, fail_on)

    from pcapip.report.analysis import analyze

    try:
        a = analyze(
            list(captures),
            trusted=list(trusted) or None,
            toa_kinds=list(toa_kinds) or None,
            progress=progress,
        )
    finally:
        progress.close()
    write_analysis(a, fmt, output, by=by, max_rows=max_rows)
    return _exit_status(a.table.worst_level(), a.errors, fail_on)


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
