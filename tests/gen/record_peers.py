"""Record small real HAProxy/nginx captures into tests/pcaps/ with their ground truth.

Each capture is taken at the origin (what a server behind HAProxy sees) and
comes with ``<name>.truth.json``: HAProxy's own log records, mapping every
egress address:port the capture shows to the real client address:port, plus
what the clients and nginx saw.  Tests compare pcapip with that file, never
with pcapip's earlier output.

Needs root (network namespaces), haproxy, nginx and tcpdump.  Usage::

    .venv/bin/python tests/gen/record_peers.py            # all captures
    .venv/bin/python tests/gen/record_peers.py haproxy-v2  # just one
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

import peers  # noqa: E402

MAX_BYTES = 50_000


@dataclass(frozen=True)
class Recording:
    name: str
    routes: tuple[str, ...]
    connections: int
    client_family: peers.Family = 4
    origin_family: peers.Family = 4
    what: str = ""


RECORDINGS = [
    Recording(
        "haproxy-v1", ("v1",), 4, what="HAProxy send-proxy (v1 TCP4) to nginx http proxy_protocol"
    ),
    Recording(
        "haproxy-v2", ("v2",), 4, what="HAProxy send-proxy-v2 (TCP over IPv4, no TLVs) to nginx"
    ),
    Recording(
        "haproxy-v2-crc-uid",
        ("v2-crc-uid",),
        4,
        what="send-proxy-v2 with proxy-v2-options crc32c,unique-id (TLVs 0x03, 0x05)",
    ),
    Recording("haproxy-noheader", ("noheader",), 4, what="HAProxy without any PROXY header"),
    Recording(
        "nginx-rejects-proxy",
        ("rejected", "rejected-v2"),
        2,
        what="v1 then v2 headers sent to nginx without proxy_protocol: HTTP 400 replies",
    ),
    Recording(
        "haproxy-ipv6",
        ("v1", "v2"),
        2,
        client_family=6,
        origin_family=6,
        what="IPv6 end to end: v1 TCP6 then v2 TCP over IPv6",
    ),
    Recording(
        "haproxy-tcp6-over-ipv4",
        ("v1", "v2"),
        2,
        client_family=6,
        origin_family=4,
        what="IPv6 clients behind an IPv4 hop: v1 TCP6 / v2 INET6 headers in IPv4 packets",
    ),
    Recording(
        "haproxy-health-checks",
        ("check-v1", "check-v2"),
        2,
        what="health checks (v2 LOCAL; v1 naming the check connection) mixed with client traffic",
    ),
]


def _version(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    return (proc.stdout or proc.stderr).strip().splitlines()[0]


def tool_versions() -> dict[str, str]:
    return {
        "haproxy": _version(["haproxy", "-v"]),
        "nginx": _version(["nginx", "-v"]),
        "tcpdump": _version(["tcpdump", "--version"]),
    }


def record(rec: Recording, out_dir: Path, versions: dict[str, str]) -> tuple[Path, Path]:
    pcap = out_dir / f"{rec.name}.pcap"
    result = peers.run_scenario(
        rec.routes,
        pcap,
        connections=rec.connections,
        client_family=rec.client_family,
        origin_family=rec.origin_family,
    )
    failed = [c for c in result.clients if c.error]
    if failed or len(result.records) != rec.connections * len(rec.routes):
        raise SystemExit(f"{rec.name}: incomplete run: {failed or result.records}")
    size = pcap.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{rec.name}: {size} bytes, more than {MAX_BYTES}")
    routes = [peers.ROUTES[name] for name in rec.routes]
    truth = {
        "description": rec.what,
        "capture_point": f"origin namespace, interface {peers.ORIGIN_IF}",
        "routes": [
            {
                "name": r.name,
                "frontend": r.frontend,
                "frontend_port": r.port,
                "header": str(r.header),
                "origin": str(r.origin),
                "origin_port": r.origin_port,
                "health_check": r.health_check,
            }
            for r in routes
        ],
        "notes": (
            "haproxy_records is the authority: each egress_ip:egress_port in the capture "
            "carries client_ip:client_port. Health-check connections are not logged."
        ),
        "tools": versions,
        **result.truth(),
    }
    truth_path = out_dir / f"{rec.name}.truth.json"
    truth_path.write_text(json.dumps(truth, indent=2) + "\n")
    return pcap, truth_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="recordings to make (default: all)")
    parser.add_argument("--out", type=Path, default=TESTS / "pcaps")
    args = parser.parse_args(argv)
    known = {r.name: r for r in RECORDINGS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown recording(s) {unknown}; known: {sorted(known)}")
    args.out.mkdir(parents=True, exist_ok=True)
    versions = tool_versions()
    for name in args.names or list(known):
        pcap, truth = record(known[name], args.out, versions)
        print(f"{pcap} ({pcap.stat().st_size} bytes), {truth.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
