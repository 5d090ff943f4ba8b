"""``pcapip resolve``'s log readers (nginx combined and custom formats, HAProxy's defaults,
JSON Lines, CSV): any log bytes load, or stop with one of pcapip's own errors."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["pcapip", "common"]):
    from common import only_own_errors, scratch

    from pcapip.resolve import haproxy, lines, nginx, tabular, times  # noqa: F401
    from pcapip.resolve.logs import LogSpec, load

SPECS = (
    LogSpec("nginx"),
    LogSpec("nginx", format='$remote_addr:$remote_port [$time_iso8601] "$request" $status'),
    LogSpec("haproxy"),
    LogSpec("jsonl"),
    LogSpec("csv"),
)


def test_one(data: bytes) -> None:
    if not data:
        return
    path = scratch(data[1:], ".log")
    only_own_errors(lambda: load(path, SPECS[data[0] % len(SPECS)]))


def seeds():
    yield b'\x00203.0.113.9 - - [06/Dec/2026:14:03:07 +0000] "GET / HTTP/1.1" 502 0 "-" "curl"\n'
    yield b'\x0110.0.0.1:40000 [2026-12-06T14:03:07+00:00] "GET / HTTP/1.1" 200\n'
    yield (b"\x02Dec  6 14:03:07 lb haproxy[1]: 10.0.0.1:40000 [06/Dec/2026:14:03:07.123] fe be/s "
           b"0/0/1/2/3 200 10 - - ---- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\"\n")
    yield b'\x03{"ip": "10.0.0.1", "port": 40000, "time": "2026-12-06T14:03:07Z"}\n'
    yield b"\x04ip,port,time\n10.0.0.1,40000,1796573000\n"


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
