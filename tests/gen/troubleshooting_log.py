"""Write ``troubleshooting.access.log``: nginx's access log of the troubleshooting capture,
as an origin that logs the proxies' egress address (``$remote_addr``) would have it.

nginx's own records of the recording (``origin_log`` in
``troubleshooting.ground-truth.json``: server port, ``$remote_addr``, ``$remote_port``,
status) carry no time, so each record gets the times its connection has in the capture,
read by tshark (not pcapip): ``$time_local`` is when the origin sent the last byte of
its answer (nginx logs a request when it ends), cut to the second and written at +0100;
``$request_time`` runs from the first byte the client side sent (the PROXY header) to
then, to the millisecond. Records are in the order they ended, as nginx writes them. The
log format, as nginx.conf would declare it::

    log_format egress '$remote_addr $remote_port [$time_local] $server_port $status $request_time';

Run (no root needed; tshark must be installed)::

    .venv/bin/python tests/gen/troubleshooting_log.py [DIR]   # default tests/pcaps

``tests/test_notebooks.py`` runs it on a fresh recording too, so the notebook's section on
``pcapip resolve`` holds for any run of ``troubleshooting_pcap.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORMAT = "$remote_addr $remote_port [$time_local] $server_port $status $request_time"
LOG = "troubleshooting.access.log"
OFFSET_S = 3600  # the origin's clock: +0100
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def packets(capture: Path) -> list[tuple[Decimal, str, int, str, int, int]]:
    """(time, source, source port, destination, destination port, payload bytes) of every
    TCP/IPv4 packet, as tshark reads them."""
    out = subprocess.run(
        ["tshark", "-r", str(capture), "-Y", "tcp && ip", "-T", "fields", "-E", "separator=,",
         "-e", "frame.time_epoch", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst",
         "-e", "tcp.dstport", "-e", "tcp.len"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    rows = []
    for line in out.splitlines():
        t, src, sport, dst, dport, length = line.split(",")
        rows.append((Decimal(t), src, int(sport), dst, int(dport), int(length)))
    return rows


def time_local(epoch: Decimal) -> str:
    t = time.gmtime(int(epoch) + OFFSET_S)
    return (f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:"
            f"{t.tm_min:02d}:{t.tm_sec:02d} +0100")


def records(directory: Path) -> list[tuple[Decimal, str]]:
    """(end time, log line) of each of nginx's records of the recording."""
    truth = json.loads((directory / "troubleshooting.ground-truth.json").read_text())
    origin = truth["origin_ip"]
    sent: dict[tuple[str, int, int], list[Decimal]] = {}  # (egress ip, port, origin port)
    answered: dict[tuple[str, int, int], Decimal] = {}
    for t, src, sport, dst, dport, length in packets(directory / truth["capture"]):
        if length and dst == origin:
            sent.setdefault((src, sport, dport), []).append(t)
        elif length and src == origin:
            answered[(dst, dport, sport)] = t
    out = []
    for line in truth["origin_log"]:
        _, server_port, addr, port, _, _, status = line.split("\t")
        key = (addr, int(port), int(server_port))
        end, first = answered[key], min(sent[key])
        took = (end - first).quantize(Decimal("0.001"))
        out.append((end, f"{addr} {port} [{time_local(end)}] {server_port} {status} {took}"))
    return sorted(out)


def write(directory: Path) -> Path:
    """The log next to the capture in ``directory``."""
    path = directory / LOG
    path.write_text("".join(line + "\n" for _, line in records(directory)))
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "pcaps"))
