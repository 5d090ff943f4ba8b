"""What ``pcapip analyze`` loads on its fast paths (CSV, TSV, JSON Lines).

On a small capture start-up is nearly all of the run (issue 12: < 0.15 s on a
10-packet capture). A timed test would be flaky, so these guard the causes instead,
each in a fresh interpreter running the real command: the packages the per-flow
exports never need stay unimported, the PROXY and frame dissectors load only for a
capture that needs them, and numpy's OpenBLAS starts no thread pool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PCAPS = Path(__file__).parent / "pcaps"
TOA = PCAPS / "flow-toa.pcap"  # TOA options, no PROXY header
PROXY = PCAPS / "dissect-proxy-split.pcap"  # 11 packets, a PROXY v1 header

# needed by other commands or formats only (table/parquet, tui, the test oracles, the JIT)
HEAVY = ("pandas", "pyarrow", "textual", "rich", "scapy", "dpkt", "matplotlib")
JIT = ("numba", "llvmlite")

# runs ``pcapip ARGS`` as the console script does, then reports on stderr what it loaded
_DRIVER = r"""
import json, os, sys
from pcapip.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
from pcapip.sources import accel
print(json.dumps({
    "code": code,
    "modules": sorted(sys.modules),
    "aot": accel.aot_current(),
    "threads": len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None,
    "openblas": os.environ.get("OPENBLAS_NUM_THREADS"),
}), file=sys.stderr)
"""


def run(*args: str, **env: str) -> tuple[str, dict]:
    """(standard output, what the run loaded) of ``pcapip *args`` in a new interpreter."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith("PCAPIP_") and k != "OPENBLAS_NUM_THREADS"
    }
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), proc.stderr[-2000:]
    return proc.stdout, report


def tops(report: dict) -> set[str]:
    return {m.split(".")[0] for m in report["modules"]}


@pytest.mark.parametrize(
    ("fmt", "capture"),
    [("csv", TOA), ("tsv", TOA), ("json", PROXY), ("csv", PROXY)],
    ids=["csv-toa", "tsv-toa", "json-proxy", "csv-proxy"],
)
def test_exports_load_none_of_the_heavy_packages(fmt: str, capture: Path) -> None:
    out, report = run("analyze", "--format", fmt, str(capture))
    assert out.count("\n") > 1  # a header (JSON: rows) and at least one flow
    heavy = HEAVY + (JIT if report["aot"] else ())  # without current AOT code numba is the way
    assert not tops(report) & set(heavy), sorted(tops(report) & set(heavy))
    assert "pcapip.flows.kernel" in report["modules"]  # the flow stage did run


def test_a_toa_capture_loads_no_proxy_or_frame_dissector() -> None:
    _, report = run("analyze", "--format", "csv", str(TOA))
    loaded = set(report["modules"])
    assert "pcapip.dissect.tcp_options" in loaded  # the TOA rules ran
    assert not loaded & {"pcapip.dissect.proxy", "pcapip.dissect.frame", "google_crc32c"}


def test_a_proxy_capture_loads_the_proxy_dissectors() -> None:
    _, report = run("analyze", "--format", "csv", str(PROXY))
    assert "pcapip.dissect.proxy_v1" in report["modules"]


def test_each_proxy_parser_loads_only_for_its_header() -> None:
    """A v1 header loads neither the v2 parser nor google_crc32c; a v2 header loads the v2
    parser, and google_crc32c only when it carries a CRC32C TLV."""
    code = r"""
import sys
from pcapip.dissect import parse_proxy
def loaded():
    return ["pcapip.dissect.proxy_v2" in sys.modules, "google_crc32c" in sys.modules]
assert parse_proxy(b"PROXY TCP4 192.0.2.1 198.51.100.2 40000 443\r\n").state.name == "OK"
seen = loaded()
v2 = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11, 0, 12]) + bytes(range(1, 13))
assert parse_proxy(v2).state.name == "OK"
seen += loaded()
parse_proxy(v2[:14] + bytes([0, 19]) + v2[16:] + bytes([0x03, 0, 4, 0, 0, 0, 0]))
print(*seen, *loaded())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["False", "False", "True", "False", "True", "True"], (
        proc.stdout + proc.stderr[-2000:]
    )


def test_the_aot_currency_check_loads_no_openssl() -> None:
    """The kernels' fingerprints hash with _blake2, which is hashlib.blake2b without the
    OpenSSL-backed hashlib import (~3 ms of a 10-packet run)."""
    _, report = run("analyze", "--format", "csv", str(TOA))
    if not report["aot"]:
        pytest.skip("no current ahead-of-time module: the JIT loads what it needs")
    assert not set(report["modules"]) & {"hashlib", "_hashlib"}


def test_openblas_starts_no_threads_unless_asked() -> None:
    _, report = run("analyze", "--format", "csv", str(TOA))
    assert "numpy" in report["modules"]
    assert report["openblas"] == "1"
    if report["threads"] is not None and report["aot"]:  # (numba's JIT is not OpenBLAS)
        assert report["threads"] == 1
    _, report = run("analyze", "--format", "csv", str(TOA), OPENBLAS_NUM_THREADS="2")
    assert report["openblas"] == "2"  # the user's choice stays


def test_dissect_names_resolve_lazily_to_their_definitions() -> None:
    code = r"""
import importlib, sys
import pcapip.dissect as d
assert "pcapip.dissect.proxy" not in sys.modules and "pcapip.dissect.frame" not in sys.modules
import pcapip.dissect.hexdump  # a submodule named like a public function must not shadow it
for name in d.__all__:
    home = importlib.import_module("pcapip.dissect." + d._HOME.get(name, "hexdump"))
    assert getattr(d, name) is getattr(home, name), name
assert callable(d.hexdump) and set(d.__all__) <= set(dir(d))
from pcapip.dissect import *  # noqa: F403
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_the_collector_pauses_only_while_analyze_starts_and_reads(capsys) -> None:
    """``pcapip.cli.collector``: off for the imports and the read loop, then back on, so an
    in-process caller (and every long-running command) keeps its cyclic collector."""
    import gc

    from pcapip.cli.collector import collector_off
    from pcapip.cli.main import main

    assert gc.isenabled()
    with collector_off():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", "--format", "csv", str(TOA)])
    assert exit_.value.code == 0 and capsys.readouterr().out.count("\n") > 1
    assert gc.isenabled()
    gc.disable()  # and one that was off stays off
    try:
        with pytest.raises(SystemExit):
            main(["analyze", "--format", "csv", str(TOA)])
        assert not gc.isenabled()
    finally:
        gc.enable()
