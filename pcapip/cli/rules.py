"""``pcapip rules``: check a forwarding rules file, and what the wire did with each rule."""

from __future__ import annotations

import json
import sys
from typing import IO

import click

from pcapip.cli.options import fail_on_option, force_option, toa_kind_option, trusted_option
from pcapip.cli.output import FORMATS, check_input, check_output, pick_format
from pcapip.errors import UsageError

#: the listing's columns (without --capture): each rule as its line says it
LISTING = ("line", "transport", "forwarding", "origin", "origin_ports", "persistence", "method")


def _listing(path: str) -> list[dict[str, object]]:
    from pcapip.rules import RuleSet

    out = []
    for r in RuleSet.load(path).rules:
        fwd, origin, oports, persist, method = r.text.split()
        out.append(
            dict(
                zip(
                    LISTING,
                    (r.line, r.transport, fwd.partition(":")[2], origin, oports, persist, method),
                    strict=True,
                )
            )
        )
    return out


def _write_listing(
    rows: list[dict[str, object]], fmt: str, output: str | None, force: bool
) -> None:
    """The listing on standard output, or written whole to ``output`` (as analyze's are)."""
    if output in (None, "-"):
        _listing_to(rows, fmt, sys.stdout)
        return
    from pcapip.report.atomic import atomic_path

    with atomic_path(output, force=force) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        _listing_to(rows, fmt, fh)


def _listing_to(rows: list[dict[str, object]], fmt: str, fh: IO[str]) -> None:
    if fmt == "json":
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    elif fmt == "csv":
        import csv

        w = csv.DictWriter(fh, fieldnames=LISTING, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    else:
        fh.write("  ".join(f"{c:<12}" for c in LISTING).rstrip() + "\n")
        for r in rows:
            fh.write("  ".join(f"{r[c]!s:<12}" for c in LISTING).rstrip() + "\n")


@click.command(name="rules")
@click.argument("rules_file", metavar="FILE")
@click.option(
    "--capture",
    "captures",
    multiple=True,
    metavar="CAPTURE",
    help="Judge this capture's flows against the rules: one row per rule (flows by method, "
    "mismatched), then the origins no rule covers. Repeatable (one recording, in time order).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Output format (default: table on a terminal, else csv; -o FILE picks by extension).",
)
@click.option("-o", "--output", default=None, metavar="FILE", help="Write to FILE.")
@trusted_option
@toa_kind_option
@fail_on_option
@force_option
@click.pass_context
def command(
    ctx: click.Context,
    rules_file: str,
    captures: tuple[str, ...],
    fmt: str | None,
    output: str | None,
    trusted: tuple[str, ...],
    toa_kinds: tuple[str, ...],
    fail_on: str | None,
    force: bool,
) -> int:
    """Check the proxy's forwarding rules FILE (EdgeOne batch format, one rule per line:
    'tcp:80-90 origin.example.com 90-100 off toa').

    Every problem is reported with its line number (exit 2). Without --capture the rules
    are listed as read; with it, each rule's flows: what `pcapip analyze --rules FILE
    --by rule` writes. Exit status: 0 ok, 1 findings at --fail-on level, 2 bad input.
    """
    if captures:
        from pcapip.cli import analyze

        return ctx.invoke(
            analyze.command,
            captures=captures,
            rules=rules_file,
            by="rule",
            fmt=fmt,
            output=output,
            trusted=trusted,
            toa_kinds=toa_kinds,
            fail_on=fail_on,
            force=force,
        )
    check_input(rules_file, stdin_ok=False)
    check_output(output, force=force, reads=[rules_file])
    chosen = pick_format(fmt, output)
    if chosen in ("tsv", "parquet"):
        raise UsageError(f"the rules listing is written as table, csv or json, not {chosen}")
    _write_listing(_listing(rules_file), chosen, output, force)
    return 0
