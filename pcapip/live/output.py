"""Rolling output while capturing: one line per flow, or a live-updating Rich view.

Lines (``csv`` / ``json``) are written and flushed the moment a flow's client
question is settled, so ``pcapip live ... --format json | jq`` sees each
connection while it is still open.  They have ``pcapip analyze``'s columns
(``pcapip.flows.columns.COLUMNS``) and the summary's flow numbers (those of
``pcapip analyze`` on the ``-w`` file, unless ``--max-flows`` cut flows in two),
so the stream loads like an analyze export and ``pcapip show --flow N`` finds
the flow; a line
carries what is known then (``end``, ``packets`` and ``bytes`` so far). The
final summary, with the complete counters and the findings that need the whole
capture, never goes into this stream (stderr, or ``-o FILE``).
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import IO, Any, Protocol

from pcapip.flows.columns import COLUMNS, METHODS
from pcapip.flows.crossflow import missing_client
from pcapip.flows.findings import CATALOGUE, ORDER, Level, join_codes
from pcapip.flows.rows import FlowRow
from pcapip.flows.ruled import judge_row
from pcapip.sources.order import iso_ns


class CrossFlow:
    """The findings that compare flows, judged on the flows seen so far.

    ``analyze`` adds ``client.missing`` (no header on a port where others carry
    one) and ``client.untrusted`` (header from outside ``--trusted``) once all
    flows are known; a rolling line can only judge against earlier flows. The forwarding
    rules (``--rules``) judge each flow alone: a line has its rule and rule findings.
    """

    def __init__(self, trusted: Sequence[Any] | None, rules: Any = None) -> None:
        self.trusted = trusted
        self.rules = rules  # pcapip.rules.RuleSet or None
        self._with_toa: set[tuple[str, str, int]] = set()  # ports where flows carry TOA
        self._with_pp: set[tuple[str, str, int]] = set()  # ... a PROXY header
        self._trust: dict[str, bool] = {}

    def _is_trusted(self, ip: str) -> bool:
        ok = self._trust.get(ip)
        if ok is None:
            try:
                a = ipaddress.ip_address(ip)
                ok = any(a.version == n.version and a in n for n in self.trusted or ())
            except ValueError:
                ok = False
            if len(self._trust) > 100_000:
                self._trust.clear()
            self._trust[ip] = ok
        return ok

    def codes(self, r: FlowRow) -> list[str]:
        codes = [f.code for f in r.findings]
        k = (r.transport, r.origin_ip, r.origin_port)
        if r.client_ip is not None and r.status == "ok":
            (self._with_toa if r.method == "toa" else self._with_pp).add(k)
        if r.method == "none" and missing_client(
            k in self._with_toa, k in self._with_pp, r.hs_done, r.spoke
        ):
            codes.append("client.missing")
        if self.trusted is not None and r.carries_client and not self._is_trusted(r.egress_ip):
            codes.append("client.untrusted")
        return codes

    def rule(self, r: FlowRow, codes: list[str]) -> str:
        """The flow's rule label ("" for none, or without ``--rules``); its rule finding, if
        any, is added to ``codes``."""
        if self.rules is None:
            return ""
        v = judge_row(self.rules, r)
        if v.code is not None:
            codes.append(v.code)
        return v.rule.label if v.rule is not None else ""

    def line(self, number: int, r: FlowRow) -> dict[str, Any]:
        """The rolling line of flow ``number``: its record with every finding judged here."""
        codes = self.codes(r)
        rule = self.rule(r, codes)
        return record(number, r, codes, rule)


def record(number: int, r: FlowRow, codes: Sequence[str], rule: str = "") -> dict[str, Any]:
    """A rolling line as a dict in analyze's COLUMNS order, with its values as analyze's
    JSON has them (None for missing, "" for no TLVs or no findings)."""
    own = {"flow": number, "start": iso_ns(r.start_ns), "end": iso_ns(r.end_ns),
           "findings": join_codes(codes), "rule": rule}
    return {c: own[c] if c in own else getattr(r, c) for c in COLUMNS}


class LiveView:
    """What the rolling table shows; updated by the live loop, rendered by RichSink."""

    def __init__(self, iface: str, tool: str, newest: int = 12) -> None:
        self.iface = iface
        self.tool = tool
        self.started = time.monotonic()
        self.packets = 0
        self.bytes = 0
        self.flows = 0  # flows reported
        self.open_flows = 0
        self.methods: Counter[str] = Counter()
        self.findings: Counter[str] = Counter()  # code -> flows
        self.newest: deque[dict[str, Any]] = deque(maxlen=newest)
        self.notes: deque[str] = deque(maxlen=4)

    def add(self, rec: dict[str, Any]) -> None:
        self.flows += 1
        self.methods[rec["method"]] += 1
        self.newest.appendleft(rec)

    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        elapsed = time.monotonic() - self.started
        head = Text()
        head.append(f"Capturing on {self.iface}", style="bold")
        head.append(
            f" with {self.tool} · {elapsed:,.0f} s · {self.packets:,} packets · "
            f"{self.flows:,} flows ({self.open_flows:,} open) · Ctrl-C stops and prints the summary"
        )
        parts: list[Any] = [head]
        for n in self.notes:
            parts.append(Text(n, style="yellow"))
        methods = Table(title="Flows per method", title_justify="left", box=None, pad_edge=False)
        methods.add_column("method")
        methods.add_column("flows", justify="right")
        for m in METHODS:
            if self.methods.get(m):
                methods.add_row(m, f"{self.methods[m]:,}")
        newest = Table(title="Newest mappings", title_justify="left", box=None, pad_edge=False)
        for c in ("start", "egress", "", "client", "method", "status", "findings"):
            newest.add_column(c)
        for rec in self.newest:
            client = _hostport(rec["client_ip"], rec["client_port"]) if rec["client_ip"] else "-"
            newest.add_row(
                rec["start"][11:23],
                _hostport(rec["egress_ip"], rec["egress_port"]),
                "→",
                client,
                rec["method"],
                rec["status"],
                rec["findings"] or "",
            )
        parts += [methods, newest]
        if self.findings:
            ft = Table(
                title="Findings (flows so far)", title_justify="left", box=None, pad_edge=False
            )
            ft.add_column("severity")
            ft.add_column("code")
            ft.add_column("flows", justify="right")
            for code, n in sorted(
                self.findings.items(), key=lambda kv: (-CATALOGUE[kv[0]].level, ORDER.get(kv[0], 0))
            ):
                lvl = CATALOGUE[code].level
                style = {Level.INFO: "cyan", Level.WARNING: "yellow", Level.ERROR: "bold red"}[lvl]
                ft.add_row(Text(lvl.label, style=style), code, f"{n:,}")
            parts.append(ft)
        return Group(*parts)


def _hostport(ip: str | None, port: int | None) -> str:
    if ip is None:
        return "-"
    host = f"[{ip}]" if ":" in ip else ip
    return f"{host}:{port}" if port is not None else host


class Sink(Protocol):
    def begin(self) -> None: ...
    def flows(self, records: Sequence[dict[str, Any]]) -> None: ...
    def update(self, view: LiveView, *, force: bool = False) -> None: ...
    def end(self) -> None: ...


class AppendingFile:
    """A flow log (``--flows FILE``): appended to, never truncated, and reopened on SIGHUP,
    so logrotate can move it away and pcapip carries on in a new file of that name."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fh: IO[str] = self._open()

    def _open(self) -> IO[str]:
        fh = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115 (closed by close)
        self.needs_header = fh.tell() == 0
        return fh

    def write(self, text: str) -> int:
        self.needs_header = False
        return self._fh.write(text)

    def flush(self) -> None:
        self._fh.flush()

    def reopen(self) -> None:
        self._fh.close()
        self._fh = self._open()

    def close(self) -> None:
        self._fh.close()


class LineSink:
    """CSV (one header first) or JSON Lines, one flushed line per flow, in analyze's columns."""

    def __init__(self, fmt: str, stream: IO[str] | AppendingFile) -> None:
        if fmt not in ("csv", "json"):
            raise ValueError(f"line format must be csv or json, not {fmt!r}")
        self.fmt = fmt
        self.stream = stream

    def begin(self) -> None:
        if self.fmt == "csv" and getattr(self.stream, "needs_header", True):
            self._write_csv([list(COLUMNS)])

    def reopen(self) -> bool:
        """SIGHUP: reopen a flow log (a CSV one starts again with its header); False when
        the lines go to a stream that cannot be reopened."""
        if not isinstance(self.stream, AppendingFile):
            return False
        self.stream.reopen()
        self.begin()
        return True

    def _write_csv(self, rows: list[list[Any]]) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerows(rows)
        self.stream.write(buf.getvalue())
        self.stream.flush()

    def flows(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        if self.fmt == "csv":
            self._write_csv([["" if r[c] is None else r[c] for c in COLUMNS] for r in records])
        else:
            self.stream.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            self.stream.flush()

    def update(self, view: LiveView, *, force: bool = False) -> None:
        pass

    def end(self) -> None:
        self.stream.flush()
        if isinstance(self.stream, AppendingFile):
            self.stream.close()


class RichSink:
    """A Rich Live view redrawn at most ``fps`` times a second; gone when capture ends."""

    def __init__(self, console: Any, fps: float = 4.0) -> None:
        self.console = console
        self.interval = 1.0 / fps
        self._live: Any = None
        self._last = 0.0

    def begin(self) -> None:
        from rich.live import Live

        self._live = Live(
            console=self.console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def flows(self, records: Sequence[dict[str, Any]]) -> None:
        pass

    def update(self, view: LiveView, *, force: bool = False) -> None:
        now = time.monotonic()
        if self._live is None or (not force and now - self._last < self.interval):
            return
        self._last = now
        self._live.update(view.render(), refresh=True)

    def end(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
