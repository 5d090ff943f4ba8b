"""``pcapip resolve``: an origin's own log with the real client of every record added."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from pcapip.cli.options import force_option
from pcapip.cli.output import check_input, check_output, to_stdout
from pcapip.errors import UsageError
from pcapip.report.atomic import atomic_path
from pcapip.resolve.columns import RESOLVE_FORMATS

if TYPE_CHECKING:
    from pcapip.resolve.logs import Log, LogSpec

_EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json", ".txt": "table"}


@click.command(name="resolve")
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE [CAPTURE...]")
@click.option("--log", "log_path", required=True, metavar="FILE",
              help="The log to resolve: a path, '-' (standard input) or a URL; gzip, zstd or lz4 read directly.")
@click.option("--nginx-format", metavar="FORMAT", default=None,
              help="nginx log_format as written in nginx.conf (default: nginx's combined).")
@click.option("--haproxy", "haproxy_default", is_flag=True,
              help="HAProxy's default TCP and HTTP log formats (option tcplog / httplog).")
@click.option("--haproxy-format", metavar="FORMAT", default=None,
              help="HAProxy log-format as written in haproxy.cfg (or 'tcp', 'http').")
@click.option("--jsonl", is_flag=True, help="The log is JSON Lines.")
@click.option("--csv", "csv_log", is_flag=True, help="The log is CSV with a header line.")
@click.option("--ip-field", default=None, metavar="NAME", help="Field with the egress address.")
@click.option("--port-field", default=None, metavar="NAME",
              help="Field with the egress port (without one, records match by address only).")
@click.option("--no-port", is_flag=True,
              help="Match by address only, even when the log has a port field.")
@click.option("--time-field", default=None, metavar="NAME", help="Field with the record's time.")
@click.option("--time-format", default=None, metavar="STRFTIME",
              help="How the time field is written (default: ISO 8601, epoch s/ms, or "
              "dd/Mon/yyyy:HH:MM:SS told apart).")
@click.option("--duration-field", default=None, metavar="NAME",
              help="Field with the request's seconds, logged at its end (default: nginx's "
              "request_time when the format has it): the record's window reaches back over it.")
@click.option("--tz", default=None, metavar="ZONE",
              help="Zone of times written without an offset (UTC, +05:30, Europe/Paris; "
              "default UTC). Offsets in the log always win; captures are UTC.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=1.0, show_default=True,
              metavar="SECONDS",
              help="Widen a record's time by this much when no connection meets it.")
@click.option("--origin-port", type=click.IntRange(1, 65535), default=None, metavar="PORT",
              help="Only connections to this origin port (the listener that wrote the log).")
@click.option("--format", "fmt", type=click.Choice(RESOLVE_FORMATS), default=None,
              help="Output format (default: table on a terminal, else csv; -o FILE picks by "
              "extension).")
@click.option("-o", "--output", default=None, metavar="FILE", help="Write to FILE, not stdout.")
@click.option("--max-rows", type=click.IntRange(min=0), default=500, show_default=True,
              help="Rows of the table format to print (0: all).")
@force_option
def command(
    captures: tuple[str, ...],
    log_path: str,
    nginx_format: str | None,
    haproxy_default: bool,
    haproxy_format: str | None,
    jsonl: bool,
    csv_log: bool,
    ip_field: str | None,
    port_field: str | None,
    no_port: bool,
    time_field: str | None,
    time_format: str | None,
    duration_field: str | None,
    tz: str | None,
    tolerance: float,
    origin_port: int | None,
    fmt: str | None,
    output: str | None,
    max_rows: int,
    force: bool,
) -> int:
    """Add the real client to every record of an origin's log (nginx, HAProxy, JSON Lines,
    CSV), matching its egress ip:port and time to a connection of the capture(s).

    Each record keeps its fields and gains client_ip, client_port, method, flow, match
    (exact, by-address, ambiguous, none) and candidates. Without a port, a record matches
    only when one connection from its address was open then; never a guess. Exit status:
    0 ok, 2 bad input.
    """
    if captures.count("-") + (log_path == "-") > 1:
        raise UsageError("standard input ('-') can be read only once")
    for c in captures:
        check_input(c)
    check_input(log_path)
    spec = _spec(nginx_format, haproxy_default, haproxy_format, jsonl, csv_log)
    spec.ip_field, spec.port_field, spec.time_field = ip_field, port_field, time_field
    spec.time_format, spec.tz, spec.duration_field = time_format, tz, duration_field
    from pcapip.resolve.times import zone

    zone(tz)  # a bad --tz is a usage error before any reading
    check_output(output, force=force, reads=[log_path, *captures])
    chosen = _pick_format(fmt, output)
    log = _read_log(log_path, spec)
    if no_port:
        log.used["port"] = None
    import pcapip

    a = pcapip.analyze(list(captures))
    from pcapip.resolve.logs import resolve_loaded

    df = resolve_loaded(a, log, tolerance=tolerance, origin_port=origin_port)
    if to_stdout(output):
        _write(df, chosen, None, log, max_rows)
    else:
        with atomic_path(output, force=force) as tmp:  # type: ignore[arg-type]  # whole or not at all
            _write(df, chosen, tmp, log, max_rows)
    _report(log_path, log, df, tz, origin_port)
    errors = list(a.errors)
    if log.parsed.damage:
        errors.append(f"--log {log_path}: {log.parsed.damage} (the records before it are "
                      f"resolved above)")
    for err in errors:
        click.echo(f"pcapip: error: {err}", err=True)
    return 2 if errors else 0


def _spec(nginx_format: str | None, haproxy_default: bool, haproxy_format: str | None,
          jsonl: bool, csv_log: bool) -> LogSpec:
    from pcapip.resolve.logs import LogSpec

    chosen = [name for name, on in (("--nginx-format", nginx_format is not None),
                                    ("--haproxy", haproxy_default),
                                    ("--haproxy-format", haproxy_format is not None),
                                    ("--jsonl", jsonl), ("--csv", csv_log)) if on]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)}: one log format at a time")
    if jsonl:
        return LogSpec(kind="jsonl")
    if csv_log:
        return LogSpec(kind="csv")
    if haproxy_default or haproxy_format is not None:
        spec = LogSpec(kind="haproxy", format=haproxy_format)
    else:
        spec = LogSpec(kind="nginx", format=nginx_format)
    _compile(spec)
    return spec


def _compile(spec: LogSpec) -> None:
    """A format that cannot be compiled is a usage error before anything is read."""
    from pcapip.resolve import haproxy, nginx

    if spec.kind == "nginx":
        nginx.compile_format(spec.format or nginx.COMBINED)
    elif spec.format:
        haproxy.compile_format(spec.format)


def _pick_format(fmt: str | None, output: str | None) -> str:
    if fmt:
        return fmt
    if not to_stdout(output):
        assert output is not None
        ext = os.path.splitext(output)[1].lower()
        if ext not in _EXTENSIONS:
            raise UsageError(f"-o {output}: unknown extension {ext!r}; use .csv, .json, .jsonl, "
                             f".txt, or name the format with --format")
        return _EXTENSIONS[ext]
    return "table" if sys.stdout.isatty() else "csv"


def _read_log(path: str, spec: LogSpec) -> Log:
    """The log's records; a log none of whose lines fits is an error, not an empty result."""
    from pcapip.resolve.logs import load

    log = load(path, spec)
    if len(log.frame) == 0 and log.parsed.bad:
        n, why, text = log.parsed.examples[0]
        raise UsageError(
            f"--log {path}: none of its {log.parsed.bad} lines is a record "
            f"(line {n}: {why}{': ' + text if text else ''}); check the log format options"
        )
    return log


def _write(df: object, fmt: str, output: str | None, log: Log, max_rows: int) -> None:
    from pcapip.resolve import write

    out = sys.stdout if to_stdout(output) else open(output, "w", encoding="utf-8", newline="")  # type: ignore[arg-type]  # noqa: SIM115
    try:
        if fmt == "csv":
            write.write_csv(df, out)  # type: ignore[arg-type]
        elif fmt == "json":
            write.write_jsonl(df, out)  # type: ignore[arg-type]
        else:
            shown = [v for k in ("time", "ip", "port") if (v := log.used.get(k))]
            shown = [s for v in shown for s in v.split("|")] + ["request", "r", "status", "ST"]
            write.write_table(df, out, shown, max_rows)  # type: ignore[arg-type]
    finally:
        if out is not sys.stdout:
            out.close()


def _report(path: str, log: Log, df: object, tz: str | None, origin_port: int | None) -> None:
    """The summary line, the lines that were no record (the first few quoted), and notes:
    records ambiguous by ip:port (``--origin-port``), times placed in UTC by default."""
    counts = df["match"].value_counts()  # type: ignore[index]
    parts = ", ".join(f"{int(counts.get(m, 0))} {m}" for m in ("exact", "by-address", "ambiguous", "none"))
    bad = log.parsed.bad
    tail = f"; {bad} unparseable line{'s' if bad != 1 else ''}" if bad else ""
    click.echo(f"pcapip: resolve: {len(df)} records: {parts}{tail}", err=True)  # type: ignore[arg-type]
    for n, why, text in sorted(log.parsed.examples):
        click.echo(f"pcapip: warning: {path}, line {n}: {why}{': ' + text if text else ''}", err=True)
    if bad > len(log.parsed.examples):
        click.echo(f"pcapip: warning: … and {bad - len(log.parsed.examples)} more", err=True)
    port = log.used.get("port")
    if port and counts.get("ambiguous", 0) and origin_port is None:
        from pcapip.resolve.api import ports

        by_pair = (df["match"] == "ambiguous").to_numpy() & (ports(df[port]) >= 0)  # type: ignore[index]
        if by_pair.any():
            click.echo(f"pcapip: note: {int(by_pair.sum())} records match one egress ip:port "
                       "to several connections open at once (to different origins): "
                       "--origin-port picks the listener that wrote the log", err=True)
    if log.offsetless and tz is None:
        click.echo("pcapip: note: the log's times name no offset: read as UTC (--tz to change)",
                   err=True)
