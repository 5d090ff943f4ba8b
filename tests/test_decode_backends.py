"""The compiled (numba) kernels and their pure-Python twins agree, column for column.

Also: PCAPIP_PURE_PYTHON=1 forces the pure path, and small inputs never
import numba (its import alone would blow the < 1 s budget of a 10-packet
analysis).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from engine_ref import PCAPS, capture_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcapip.decode import decode
from pcapip.decode.decoder import OUTPUT_COLUMNS
from pcapip.sources import FrameBatch, accel, open_capture

CAPTURES = capture_files()
# comparing the two paths needs both; the env switch (tested below) turns the compiled one off
needs_both = pytest.mark.skipif(
    accel.pure_forced(), reason="PCAPIP_PURE_PYTHON is set: there is only one path to test"
)
IDS = [p.name for p in CAPTURES]
REPO = Path(__file__).resolve().parent.parent
COLUMNS = [name for name, _ in OUTPUT_COLUMNS]
SOURCE_FIELDS = ("offset", "caplen", "origlen", "ts_ns", "linktype", "iface", "file_offset")


def read(path: Path, backend: str, **kw) -> list[FrameBatch]:
    with open_capture(path, backend=backend, **kw) as src:
        batches = list(src)
        assert src.backend_used == {backend}
    return batches


@needs_both
@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_walk_and_decode_backends_agree(path: Path):
    pure = read(path, "pure")
    compiled = read(path, "compiled")
    assert len(pure) == len(compiled)
    for a, b in zip(pure, compiled, strict=True):
        assert a.first_frame == b.first_frame
        for name in SOURCE_FIELDS:
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and np.array_equal(x, y), name
        pa, pb = decode(a, backend="pure"), decode(a, backend="compiled")
        for name in COLUMNS:
            x, y = getattr(pa, name), getattr(pb, name)
            assert x.dtype == y.dtype, name
            assert np.array_equal(x, y), f"{path.name}: column {name} differs"


def _batch(frames: list[bytes], linktypes: list[int], origlens: list[int]) -> FrameBatch:
    return FrameBatch.of_frames(frames, linktype=linktypes, origlen=origlens)


def _header_prefixes() -> list[bytes]:
    """Real frame starts, so random tails still reach deep into IP/TCP/UDP parsing."""
    out = []
    for name in ("eth-mixed-us-le.pcap", "raw101-ns-be.pcap", "sll2-ns-le.pcap"):
        with open_capture(PCAPS / name) as src:
            for b in src:
                out += [b.frame_bytes(i) for i in range(len(b))]
    return out


PREFIXES = _header_prefixes()
LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147]


@needs_both
@settings(
    max_examples=int(os.environ.get("PCAPIP_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(PREFIXES) - 1),
            st.integers(0, 120),
            st.binary(max_size=80),
            st.sampled_from(LINKTYPES),
            st.integers(0, 2000),
            st.lists(st.tuples(st.integers(0, 119), st.integers(0, 255)), max_size=4),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_backends_agree_on_mangled_frames(specs):
    """Cut, patched and re-typed real frames: no crash, identical columns on both paths."""
    frames, lts, origs = [], [], []
    for idx, cut, tail, lt, orig, patches in specs:
        f = bytearray(PREFIXES[idx][:cut] + tail)
        for pos, val in patches:
            if pos < len(f):
                f[pos] = val
        frames.append(bytes(f))
        lts.append(lt)
        origs.append(orig)
    batch = _batch(frames, lts, origs)
    pa, pb = decode(batch, backend="pure"), decode(batch, backend="compiled")
    for name in COLUMNS:
        assert np.array_equal(getattr(pa, name), getattr(pb, name)), name
    # every offset the columns name stays inside the captured frame
    has_l4 = pa.l4_off >= 0
    assert (pa.l4_off[has_l4] <= pa.caplen[has_l4] + 2**20).all()
    assert (pa.pay_cap >= 0).all() and (pa.pay_cap <= pa.pay_len).all()
    for i in range(len(pa)):
        assert len(pa.payload(i)) == pa.pay_cap[i]


def _run(code: str, env_extra: dict[str, str]) -> str:
    env = {**os.environ, **env_extra}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True
    )
    return out.stdout.strip()


def test_env_switch_forces_the_pure_path():
    code = (
        "import sys\n"
        "from pcapip.sources import open_capture\n"
        "from pcapip.decode import decode\n"
        f"src = open_capture({str(PCAPS / 'eth-mixed-us-le.pcap')!r}, backend='compiled')\n"
        "for b in src: decode(b, backend='compiled')\n"
        "print(sorted(src.backend_used), 'numba' in sys.modules)\n"
    )
    assert _run(code, {"PCAPIP_PURE_PYTHON": "1"}) == "['pure'] False"
    jit = {"PCAPIP_PURE_PYTHON": "0", "PCAPIP_NO_AOT": "1"}
    assert _run(code, jit) == "['compiled'] True"
    if _aot_built():  # the ahead-of-time kernels need no numba
        assert _run(code, {"PCAPIP_PURE_PYTHON": "0"}) == "['compiled'] False"


def _aot_built() -> bool:
    """Whether ``python -m pcapip.build_kernels`` has built current kernels (tests/test_aot.py
    requires it in CI)."""
    return _run("from pcapip.sources import accel\nprint(accel.aot_current())", {}) == "True"


def test_small_captures_do_not_import_numba():
    """Without the ahead-of-time kernels a small capture stays on the pure path (numba's
    start-up would cost more than it saves); with them it runs compiled, still without numba."""
    code = (
        "import sys\n"
        "from pcapip.sources import open_capture\n"
        "from pcapip.decode import decode\n"
        f"src = open_capture({str(PCAPS / 'multi-section.pcapng')!r})\n"
        "n = sum(len(decode(b)) for b in src)\n"
        "print(n, sorted(src.backend_used), 'numba' in sys.modules)\n"
    )
    # 12 frames: tshark numbers the custom block as one, and so does pcapip
    assert _run(code, {"PCAPIP_PURE_PYTHON": "", "PCAPIP_NO_AOT": "1"}) == "12 ['pure'] False"
    if _aot_built():
        assert _run(code, {"PCAPIP_PURE_PYTHON": ""}) == "12 ['compiled'] False"


def test_small_analysis_runs_the_flow_loops_twin_without_numba():
    """The flow stage follows the same rule: without the ahead-of-time kernels a small
    capture's TCP flows go through the loop's pure twin (numba never imported); with them
    the loop runs compiled; PCAPIP_PURE_PYTHON keeps the twin; the check switch hands
    every packet to the per-packet rules without changing which code runs."""
    code = (
        "import sys\n"
        "from pcapip.flows.run import read_captures\n"
        "from pcapip.flows.tracker import FlowTracker\n"
        "t = FlowTracker()\n"
        f"table, _ = read_captures([{str(PCAPS / 'multi-section.pcapng')!r}], tracker=t)\n"
        "s = table.stats\n"
        "print(s['packets_tcp'], t.compiled, 'numba' in sys.modules,"
        " t.per_packet == s['packets_tcp'] + s['packets_udp'])\n"
    )
    jit = {"PCAPIP_PURE_PYTHON": "", "PCAPIP_NO_AOT": "1", "PCAPIP_CHECK_RULES": ""}
    n = _run(code, jit).split()[0]
    assert int(n) > 0
    assert _run(code, jit) == f"{n} False False False"
    assert _run(code, {**jit, "PCAPIP_CHECK_RULES": "1"}) == f"{n} False False True"
    flows_aot = "import pcapip.flows.kernel\nfrom pcapip.sources import accel\nprint(accel.aot_current())"
    if _run(flows_aot, {}) == "True":
        aot = {"PCAPIP_PURE_PYTHON": "", "PCAPIP_CHECK_RULES": ""}
        assert _run(code, aot) == f"{n} True False False"
        assert _run(code, {**aot, "PCAPIP_PURE_PYTHON": "1"}) == f"{n} False False False"


@needs_both
def test_large_captures_switch_to_the_compiled_path(tmp_path: Path):
    """Without the ahead-of-time kernels, the source estimates the frame count from a
    pure-Python sample and then loads the JIT."""
    from gen.engine_pcaps import pcap_bytes

    frame = (PCAPS / "eth-mixed-us-le.pcap").read_bytes()[24 + 16 : 24 + 16 + 74]
    path = tmp_path / "many.pcap"
    path.write_bytes(pcap_bytes([(i * 1000, frame) for i in range(60_000)], linktype=1))
    code = (
        "import sys\n"
        "from pcapip.sources import open_capture\n"
        "from pcapip.decode import decode\n"
        f"src = open_capture({str(path)!r})\n"
        "n = sum(len(decode(b)) for b in src)\n"
        "print(n, sorted(src.backend_used), 'numba' in sys.modules)\n"
    )
    jit = {"PCAPIP_PURE_PYTHON": "", "PCAPIP_NO_AOT": "1"}
    assert _run(code, jit) == "60000 ['compiled', 'pure'] True"
