"""``pcapip live --metrics HOST:PORT``: Prometheus metrics at ``/metrics`` (prometheus_client).

The names are a contract (dashboards and alerts use them), declared once in ``METRICS``:

* ``pcapip_packets_total``, ``pcapip_bytes_total``: frames and bytes captured;
* ``pcapip_capture_dropped_packets_total``: packets the capture tool reported dropped by
  the kernel (dumpcap and tcpdump report them when they stop);
* ``pcapip_packets_undecoded_total{reason}``: frames that gave no TCP/UDP packet, by reason;
* ``pcapip_flows_total{transport,method,status}``: connections, each counted once: when its
  client question is settled, or when it ends before;
* ``pcapip_findings_total{code,severity}``: connections that ended with each finding;
* ``pcapip_open_flows``: connections tracked now;
* ``pcapip_toa_stats{counter}``: the ``/proc/net/toa_stats`` view of the handshakes
  (``syn_recv_sock_toa``, ``syn_recv_sock_no_toa``, ``toa_in_syn``), cumulative.

Labels have small, fixed vocabularies (methods, statuses, finding codes, undecoded reasons):
no label holds a client or egress address, since one series per address would grow with
the traffic (an attack brings millions) and stall the Prometheus server. ``--metrics-egress
N`` adds ``pcapip_egress_flows_total{egress_ip}`` for the first N egress addresses seen; the
rest are counted under ``egress_ip="other"``.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from pcapip.errors import UsageError
from pcapip.flows.findings import CATALOGUE

#: name (without the ``_total`` Prometheus adds to counters), type, help, labels
METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "pcapip_packets": ("counter", "Frames captured.", ()),
    "pcapip_bytes": ("counter", "Bytes captured (frame lengths on the wire).", ()),
    "pcapip_capture_dropped_packets": (
        "counter", "Packets the capture tool reported dropped by the kernel.", ()),
    "pcapip_packets_undecoded": (
        "counter", "Frames that gave no TCP/UDP packet, by reason.", ("reason",)),
    "pcapip_flows": (
        "counter", "Connections, counted once: when their client is settled, or when they end.",
        ("transport", "method", "status")),
    "pcapip_findings": (
        "counter", "Connections that ended with each finding.", ("code", "severity")),
    "pcapip_open_flows": ("gauge", "Connections tracked now.", ()),
    "pcapip_toa_stats": (
        "gauge", "Handshakes as /proc/net/toa_stats counts them (cumulative).", ("counter",)),
    "pcapip_egress_flows": (
        "counter", "Connections per egress address (--metrics-egress; the rest: other).",
        ("egress_ip",)),
}
TOA_COUNTERS = ("syn_recv_sock_toa", "syn_recv_sock_no_toa", "toa_in_syn")


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``, or ``:PORT`` for every address) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--metrics: {text!r} is not HOST:PORT (e.g. 127.0.0.1:9877)")
    return host.strip("[]") or "0.0.0.0", int(port)


class Metrics:
    """The metrics of one live capture, served by prometheus_client's own HTTP server."""

    def __init__(self, address: str, egress_series: int = 0) -> None:
        import prometheus_client
        from prometheus_client import CollectorRegistry, Counter, Gauge

        # no *_created series: they double what a scrape carries and no dashboard reads them
        prometheus_client.disable_created_metrics()

        self.host, self.port = parse_address(address)
        if egress_series < 0:
            raise UsageError("--metrics-egress must be 0 or more")
        self.registry = CollectorRegistry()
        kinds = {"counter": Counter, "gauge": Gauge}
        self.m: dict[str, Any] = {
            name: kinds[kind](name, doc, labels, registry=self.registry)
            for name, (kind, doc, labels) in METRICS.items()
            if name != "pcapip_egress_flows" or egress_series
        }
        self.egress_series = egress_series
        self._egress: set[str] = set()
        self._undecoded: dict[str, int] = {}
        self._toa: Tally[str] = Tally()
        self._dropped = 0
        self._server: Any = None

    def start(self) -> None:
        """Serve ``/metrics``; a port in use is one clear line (exit 2)."""
        from prometheus_client import start_http_server

        try:
            self._server, _ = start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as exc:
            raise UsageError(
                f"--metrics {self.host}:{self.port}: cannot listen: {exc.strerror or exc}"
            ) from None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ------------------------------------------------------------------ updates
    def batch(self, frames: int, nbytes: int, open_flows: int) -> None:
        self.m["pcapip_packets"].inc(frames)
        self.m["pcapip_bytes"].inc(nbytes)
        self.m["pcapip_open_flows"].set(open_flows)

    def flows(self, rows: Iterable[Any]) -> None:
        """Rows reported (settled or ended before): each counted once."""
        flows = self.m["pcapip_flows"]
        for r in rows:
            flows.labels(r.transport, r.method or "none", r.status).inc()
            if r.transport == "tcp" and r.hs_done:
                self._toa["syn_recv_sock_toa" if r.hs_toa else "syn_recv_sock_no_toa"] += 1
            if r.toa_in_syn:
                self._toa["toa_in_syn"] += 1
            if self.egress_series:
                self._count_egress(r.egress_ip)
        toa = self.m["pcapip_toa_stats"]
        for name in TOA_COUNTERS:
            toa.labels(name).set(self._toa[name])

    def _count_egress(self, ip: str) -> None:
        if ip not in self._egress and len(self._egress) < self.egress_series:
            self._egress.add(ip)
        label = ip if ip in self._egress else "other"
        self.m["pcapip_egress_flows"].labels(label).inc()

    def findings(self, ended: Tally[str]) -> None:
        """Finding code -> connections that ended with it (since the last call)."""
        m = self.m["pcapip_findings"]
        for code, n in ended.items():
            kind = CATALOGUE.get(code)
            m.labels(code, kind.level.label if kind else "unknown").inc(n)

    def undecoded(self, totals: dict[str, int]) -> None:
        """Reason label -> frames so far (the tracker's running totals)."""
        m = self.m["pcapip_packets_undecoded"]
        for reason, n in totals.items():
            was = self._undecoded.get(reason, 0)
            if n > was:
                m.labels(reason).inc(n - was)
                self._undecoded[reason] = n

    def dropped(self, total: int) -> None:
        if total > self._dropped:
            self.m["pcapip_capture_dropped_packets"].inc(total - self._dropped)
            self._dropped = total
