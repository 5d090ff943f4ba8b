"""The live loop: capture tool -> engine -> flow stage -> rolling output -> final summary.

One thread (the caller's) does all the analysis and output; the capture tool
and the two feed threads only move bytes.  The loop waits for batches with a
short timeout, so on an idle interface it still notices the end of
``--duration``, a Ctrl-C, the interface going down, and redraws the screen.

The packets go through the one read loop every front end uses
(:func:`pcapip.flows.run.read_captures`): the capture tool's batches are its source, and
the rolling output is its per-batch callback.

Stopping never loses what was captured: the tool is asked to stop (SIGINT),
its remaining output is read to the end, and only then are the flows
finished, so the summary covers exactly the packets in the ``-w`` file.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pcapip.errors import CaptureError, UsageError
from pcapip.live.capturer import Capturer
from pcapip.live.errors import CaptureFailed, InterfaceGone, LiveError
from pcapip.live.feed import Feed
from pcapip.live.output import CrossFlow, LiveView, Sink
from pcapip.live.tools import CaptureTool, find_tool
from pcapip.live.watch import InterfaceWatch, Signals

TICK = 0.2  # seconds between checks of the clock, signals and the interface when idle
READY_TIMEOUT = 15.0  # the tool must open the interface within this time
DRAIN_TIMEOUT = 5.0  # after SIGINT, the tool's remaining output must end within this time


@dataclass
class LiveOptions:
    """What ``pcapip live`` was asked to do."""

    iface: str
    bpf: str | None = None
    duration: float | None = None
    count: int | None = None
    write: str | None = None
    trusted: list[str] | None = None
    rules: str | None = None  # --rules: the forwarding rules file
    toa_kinds: list[str] | None = None
    max_flows: int = 100_000
    attempt_timeout: float | None = None
    vxlan_ports: tuple[int, ...] = ()
    tool: str = "auto"
    snaplen: int | None = None
    buffer_mib: int | None = 32
    batch_size: int = 65536
    ring: Any = None  # RingSpec: -w names a ring buffer of files (pcapip.live.ring)
    metrics: str | None = None  # HOST:PORT serving Prometheus metrics (pcapip.live.metrics)
    metrics_egress: int = 0  # per-egress-address series at most


@dataclass
class LiveResult:
    """How a live capture ended and what it found."""

    analysis: Any  # pcapip.report.analysis.Analysis
    reason: str  # "duration" | "count" | "interrupted" | "ended" | "interface-gone" | "error"
    error: LiveError | CaptureError | None
    notes: list[str] = field(default_factory=list)
    packets: int = 0
    bytes: int = 0
    kernel_stats: tuple[int, int] | None = None  # (received, dropped) as the tool reported
    limit_hits: int = 0
    tool: CaptureTool | None = None
    format: str | None = None


class LiveSession:
    """Runs one live capture; :meth:`run` returns when it has ended.

    ``sink`` receives the rolling output; ``note`` gets one-line messages for
    the operator (capture started, interface down, ...), by default stderr.
    """

    def __init__(
        self,
        opts: LiveOptions,
        sink: Sink,
        *,
        note: Callable[[str], None] | None = None,
        capture_name: str | None = None,
    ) -> None:
        from pcapip.flows.run import registry_for
        from pcapip.flows.trusted import parse_trusted

        if opts.duration is not None and opts.duration <= 0:
            raise UsageError("--duration must be more than 0 seconds")
        if opts.count is not None and opts.count < 1:
            raise UsageError("--count must be at least 1")
        if opts.max_flows < 1:
            raise UsageError("--max-flows must be at least 1")
        self.opts = opts
        self.sink = sink
        self._note = note or _stderr_note
        self.nets = parse_trusted(opts.trusted)
        from pcapip.rules import ruleset

        self.rules = ruleset(opts.rules)  # (a bad file fails before the capture starts)
        self.registry = registry_for(opts.toa_kinds)
        self.capture_name = capture_name or opts.write or f"live:{opts.iface}"
        self.view: LiveView | None = None
        self.notes: list[str] = []
        self._said: set[str] = set()  # warnings said while capturing, not again at the end
        self.metrics: Any = None
        self.ring: Any = None  # the RingWriter, once capturing into a ring buffer
        if opts.metrics:
            from pcapip.live.metrics import Metrics

            self.metrics = Metrics(opts.metrics, opts.metrics_egress)

    def note(self, message: str) -> None:
        self.notes.append(message)
        if self.view is not None:
            self.view.notes.append(message)
        self._note(message)

    # ------------------------------------------------------------------ run
    def run(self) -> LiveResult:
        from pcapip.flows.run import timeouts
        from pcapip.live.tracking import LiveTracker
        from pcapip.report.analysis import Analysis

        tool = self._tool()
        tracker = LiveTracker(
            registry=self.registry,
            max_flows=self.opts.max_flows,
            vxlan_ports=self.opts.vxlan_ports,
            **timeouts(self.opts.attempt_timeout),
        )
        cross = CrossFlow(self.nets, self.rules)
        cap = Capturer(
            tool,
            self.opts.iface,
            bpf=self.opts.bpf,
            count=self.opts.count,
            snaplen=self.opts.snaplen,
            buffer_mib=self.opts.buffer_mib,
        )
        self.view = view = LiveView(self.opts.iface, tool.name)
        error: LiveError | CaptureError | None = None
        reason = "ended"
        feed: Feed | None = None
        analysis: Any = None
        if self.metrics is not None:
            self.metrics.start()
            self.note(f"metrics at http://{self.metrics.host}:{self.metrics.port}/metrics")
        try:
            with Signals() as sigs:
                fd = cap.start()
                label = f"{tool.name} on {self.opts.iface}"
                plain = None if self.opts.ring is not None else self.opts.write
                feed = Feed(fd, label=label, write_path=plain, batch_size=self.opts.batch_size)
                feed.start()
                if not self._wait_ready(cap, feed, sigs):
                    if sigs.requested:
                        raise KeyboardInterrupt
                    cap.wait(2.0)
                    feed.join(2.0)
                    raise cap.diagnose(started=False) or CaptureFailed(
                        f"{tool.name} did not start capturing within {READY_TIMEOUT:.0f} s"
                    )
                self._announce(tool)
                self.sink.begin()
                batches = _Batches(self, cap, feed, sigs, view)
                table, errors = self._track(batches, tracker, cross, view)
                reason, error = self._ended(batches, cap, feed, view)
                for w in table.warnings:  # every oddity said, as analyze says it
                    if str(w) not in self._said:
                        self.note(f"warning: {w}")
                self._report(tracker.take_numbered(), cross, view)
                self._measure_end(tracker, cap)
                analysis = Analysis(table, errors)
        finally:
            cap.close()
            if feed is not None:
                feed.join(2.0)
            self.sink.end()
            if self.metrics is not None:
                self.metrics.stop()
        stats = self._closing_notes(tool, cap, feed, tracker.limit_hits)
        return LiveResult(
            analysis=analysis,
            reason=reason,
            error=error,
            notes=list(self.notes),
            packets=view.packets,
            bytes=feed.bytes_in if feed is not None else 0,
            kernel_stats=stats,
            limit_hits=tracker.limit_hits,
            tool=tool,
            format=feed.format if feed is not None else None,
        )

    def _tool(self) -> CaptureTool:
        """The capture tool to run, with what the operator should know about it."""
        tool, tool_notes = find_tool(self.opts.tool)
        for n in tool_notes:
            self.note(n)
        if tool.format == "pcap" and (self.opts.write or "").lower().endswith(".pcapng"):
            self.note(
                f"{tool.name} writes pcap: {self.opts.write} will hold a pcap capture "
                "(tshark and pcapip read it by its content, not its name)"
            )
        return tool

    def _ended(
        self, batches: _Batches, cap: Capturer, feed: Feed, view: LiveView
    ) -> tuple[str, LiveError | CaptureError | None]:
        """The stream has ended (or failed): let the tool exit and the ``-w`` copy close;
        why it ended, and the error to report (the tool's own, if the loop had none)."""
        reason, error = batches.reason, batches.error
        cap.close()
        feed.join(DRAIN_TIMEOUT)
        gone = cap.diagnose(started=True)
        if gone is not None and error is None:
            reason = "error"
            if isinstance(gone, InterfaceGone):
                reason = "interface-gone"
                gone = InterfaceGone(
                    f"{gone}; the summary covers the {view.packets} packets captured before"
                )
            error = gone
        return reason, error

    def _closing_notes(
        self, tool: CaptureTool, cap: Capturer, feed: Feed | None, limit_hits: int
    ) -> Any:
        """The notes every ending gives (a failed ``-w``, the kernel's drops, flows the
        ``--max-flows`` cap ended early); returns the tool's (received, dropped) counts."""
        if feed is not None and feed.write_error:
            self.note(f"error: {feed.write_error}")
        stats = cap.stats()
        if stats and stats[1]:
            self.note(
                f"{tool.name} reports {stats[1]} packets dropped by the kernel "
                f"(of {stats[0]} received): analysis covers the packets captured"
            )
        elif stats:
            self.note(f"{tool.name}: {stats[0]} packets received, 0 dropped by the kernel")
        if limit_hits:
            self.note(
                f"{limit_hits} flows were ended early: more than "
                f"{self.opts.max_flows} open at once (--max-flows)"
            )
        return stats

    def _track(self, batches: _Batches, tracker: Any, cross: CrossFlow, view: LiveView) -> Any:
        """The one read loop (analyze's): decode, track, build the table at the end; the
        rolling output after every batch. (table, errors)."""
        from pcapip.flows.run import read_captures

        metrics = self.metrics
        ring = None
        if self.opts.ring is not None and self.opts.write:
            from pcapip.live.ring import RingWriter

            ring = self.ring = RingWriter(self.opts.write, self.opts.ring)

        def on_batch(ci: int, src: Any, batch: Any, pk: Any) -> None:
            if ring is not None:
                ring.write(batch)
            view.packets += len(batch)
            self._report(tracker.take_numbered(), cross, view)
            ended = tracker.take_ended_findings()
            view.findings.update(ended)
            view.open_flows = tracker.open_flows
            self._say_spool()
            if metrics is not None:
                metrics.batch(len(batch), int(batch.origlen.sum()), tracker.open_flows)
                metrics.findings(ended)
                metrics.undecoded(tracker.undecoded.totals())
            self.sink.update(view)

        try:
            return read_captures(
                [batches],
                tracker=tracker,
                trusted=self.opts.trusted,
                toa_kinds=self.opts.toa_kinds,
                on_batch=on_batch,
                rules=self.rules,
            )
        finally:
            if ring is not None:
                ring.close()

    def _say_spool(self) -> None:
        """Say at once that temporary files could not be written: a service would otherwise
        grow in memory for hours before its summary said why."""
        from pcapip.flows.store import trouble
        from pcapip.flows.table import spool_warnings

        for w in spool_warnings(trouble()):
            if str(w) not in self._said:
                self._said.add(str(w))
                self.note(f"warning: {w}")

    def _measure_end(self, tracker: Any, cap: Capturer) -> None:
        """The metrics of what ended with the capture, and the tool's drop count."""
        if self.metrics is None:
            return
        self.metrics.findings(tracker.take_ended_findings())
        self.metrics.undecoded(tracker.undecoded.totals())
        self.metrics.batch(0, 0, 0)
        stats = cap.stats()
        if stats:
            self.metrics.dropped(stats[1])

    def _wait_ready(self, cap: Capturer, feed: Feed, sigs: Signals) -> bool:
        """Until the interface is open: dumpcap writes its file header then, tcpdump says
        "listening on" (its header waits for the first packet)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and not sigs.requested:
            if feed.first_bytes.wait(0.05) or cap.listening.is_set():
                return True
            if not cap.running:
                # it may have written its header and ended at once (e.g. -c reached): check again
                return feed.first_bytes.wait(0.2)
        return False

    def _announce(self, tool: CaptureTool) -> None:
        o = self.opts
        bits = [f"capturing on {o.iface} with {tool.name} ({tool.format})"]
        if o.bpf:
            bits.append(f"filter {o.bpf!r}")
        if o.duration:
            bits.append(f"for {o.duration:g} s")
        if o.count:
            bits.append(f"until {o.count} packet{'s' if o.count != 1 else ''}")
        if o.write and o.ring is not None:
            r = o.ring
            keep = f", newest {r.files} kept" if r.files else ""
            every = " or ".join(
                x for x in (f"{r.filesize / 1e6:g} MB" if r.filesize else "",
                            f"{r.duration:g} s" if r.duration else "") if x)
            bits.append(f"ring buffer {o.write} (a file per {every}{keep})")
        elif o.write:
            bits.append(f"copy in {o.write}")
        self.note(", ".join(bits) + "; Ctrl-C stops and prints the summary")

    def _report(self, numbered, cross: CrossFlow, view: LiveView) -> None:
        if not numbered:
            return
        recs = [cross.line(n, r) for n, r in numbered]
        for rec in recs:
            view.add(rec)
        if self.metrics is not None:
            self.metrics.flows(r for _, r in numbered)
            # --rules judges a flow when its line is written: its rule findings count then
            ruled = Counter(c for rec in recs for c in rec["findings"].split(";") if c.startswith("rule."))
            if ruled:
                self.metrics.findings(ruled)
        self.sink.flows(recs)


class _Batches:
    """The capture tool's batches as a source of :func:`pcapip.flows.run.read_captures`.

    Waits for each batch with a short timeout, so on an idle interface it still notices
    the end of ``--duration``, a Ctrl-C and the interface going down, and redraws the
    screen; after the stop it reads the tool's remaining output to the end. ``reason``
    says how the stream ended; a damaged stream raises its CaptureError (``error``).
    """

    def __init__(self, session: LiveSession, cap: Capturer, feed: Feed, sigs: Signals,
                 view: LiveView) -> None:
        self.session, self.cap, self.feed, self.sigs, self.view = session, cap, feed, sigs, view
        self.name = session.capture_name
        self.reason = "ended"
        self.error: CaptureError | None = None

    @property
    def warnings(self) -> list:
        """The capture reader's warnings (set when the stream has ended)."""
        return self.feed.warnings

    def __iter__(self) -> Iterator[Any]:
        # the summary needs pandas (half a second to import) and the flow stage runs faster
        # compiled: load both while packets flow, so the summary follows Ctrl-C at once
        threading.Thread(target=_preload, name="preload", daemon=True).start()
        s, cap, feed, sigs, view = self.session, self.cap, self.feed, self.sigs, self.view
        watch = InterfaceWatch(s.opts.iface)
        deadline = time.monotonic() + s.opts.duration if s.opts.duration else None
        view.started = time.monotonic()
        stop_reason: str | None = None
        drain_until: float | None = None
        while True:
            now = time.monotonic()
            if stop_reason is None:
                if sigs.requested:
                    stop_reason = sigs.requested
                elif deadline is not None and now >= deadline:
                    stop_reason = "duration"
                if stop_reason is not None:
                    cap.stop()
                    drain_until = now + DRAIN_TIMEOUT
            elif drain_until is not None and now > drain_until:
                cap.kill()  # ignored SIGINT: its pipe closes and the reader sees the end
                drain_until = now + DRAIN_TIMEOUT
            msg = watch.poll()
            if msg:
                s.note(msg)
            if sigs.hangup:
                sigs.hangup = False
                reopen = getattr(s.sink, "reopen", None)
                if reopen is not None and reopen():
                    s.note("SIGHUP: flow log reopened")
            timeout = TICK
            if deadline is not None and stop_reason is None:
                timeout = max(0.0, min(TICK, deadline - now))
            try:
                ev = feed.events.get(timeout=timeout)
            except queue.Empty:
                s.sink.update(view)
                continue
            if ev.kind == "batch":
                yield ev.value
                continue
            if ev.kind == "error":
                cap.stop()
                self.reason, self.error = "error", ev.value
                raise ev.value
            # end of the stream
            if stop_reason is None:
                rc = cap.wait(2.0)
                if s.opts.count and rc == 0 and view.packets >= s.opts.count:
                    stop_reason = "count"
                else:
                    stop_reason = "ended"
            self.reason = stop_reason
            return


def _preload() -> None:
    import importlib

    # the summary's frames and table (pcapip.report.analysis loads pandas only when a frame
    # is built, so it is named here)
    for name in ("pandas", "pcapip.report.analysis", "pcapip.report.render"):
        importlib.import_module(name)
    # the flow stage starts per packet and moves to its compiled loop once this is loaded
    from pcapip.flows.tracker import warm_compiled

    warm_compiled()


def _stderr_note(message: str) -> None:
    import click

    click.echo(f"pcapip: {message}", err=True)
