"""The ahead-of-time kernel module: current, used, equivalent to the JIT and the pure loops.

``pcapip._kernels`` (built by ``python -m pcapip.build_kernels``) replaces numba
at run time only when it is current, and every call into it is checked first:
the machine code reads arguments as raw memory, so a wrong array would crash
the process. Runs that could crash happen in subprocesses, so a crash fails
the test instead of killing pytest.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import types
from pathlib import Path

import pytest

from pcapip.build_kernels import KERNEL_MODULES
from pcapip.sources import accel

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "tests" / "pcaps"
ALL_KERNELS = {
    "walk_pcap",
    "walk_pcapng",
    "decode_frames",
    "track_tcp",
    "expire",
    "plain_rows",
    "unindex",
    "rehash",
    "text_lines",
}
CAPTURES = [
    "troubleshooting.pcap",
    "eth-mixed-us-le.pcap",
    "eth-snap80-ns-be.pcap",
    "haproxy-v2.pcap",
    "flow-toa.pcap",
    "multi-section.pcapng",
    "multi-section.pcapng.gz",
    "all-links-be.pcapng",
    "loopback-dumpcap.pcapng",
    "bad-block-length.pcapng",
]


def _env(**set_vars: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PCAPIP_")}
    env.update(set_vars)
    return env


def _module_state() -> tuple[bool, list[str]]:
    """(module importable, names of kernels whose built code is missing or stale),
    looked at directly so that PCAPIP_NO_AOT in the test environment does not hide it."""
    import importlib

    for name in KERNEL_MODULES:
        importlib.import_module(name)
    try:
        module = importlib.import_module(accel.AOT_MODULE)
    except ImportError:
        return False, sorted(ALL_KERNELS)
    stale = []
    for k in accel.kernels():
        fp = getattr(module, k.__name__ + accel.FINGERPRINT_SUFFIX, None)
        if fp is None or fp() != accel.kernel_fingerprint(k):
            stale.append(k.__name__)
    return True, stale


def require_built() -> None:
    """Skip without a current module on a developer machine; in CI it must be there."""
    built, stale = _module_state()
    if built and not stale:
        return
    why = f"{accel.AOT_MODULE} is not built" if not built else f"stale kernels: {', '.join(stale)}"
    message = f"{why}: run `.venv/bin/python -m pcapip.build_kernels`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def fresh_aot(monkeypatch: pytest.MonkeyPatch):
    """Resolve kernels again with the module allowed, and again after the test."""
    monkeypatch.delenv(accel.NO_AOT_ENV, raising=False)
    monkeypatch.delenv(accel.PURE_ENV, raising=False)
    accel.reset_aot()
    yield
    monkeypatch.undo()
    accel.reset_aot()


def test_module_is_built_and_every_kernel_is_current() -> None:
    require_built()
    built, stale = _module_state()
    assert built and stale == []
    assert {k.__name__ for k in accel.kernels()} >= ALL_KERNELS
    assert all(k.signature for k in accel.kernels())


# ---------------------------------------------------------------- whole runs
_DRIVER = r"""
import atexit, json, os, sys
from pcapip.sources import accel
from pcapip.cli.main import main

mode, out_dir, stats_path, *captures = sys.argv[1:]
if mode == "jit":
    # take the paths a current module would take (compiled from the first batch, every
    # size), so the JIT runs the same calls the ahead-of-time code runs
    accel.aot_current = lambda: True
codes = {}
for i, cap in enumerate(captures):
    try:
        main(["analyze", cap, "--format", "csv", "--no-progress", "-o", f"{out_dir}/{i}.csv"])
    except SystemExit as exc:
        codes[cap] = exc.code
stats = {
    k.__name__: {
        "aot": k.aot_calls,
        "fallbacks": k.aot_fallbacks,
        "jit": k._jit is not None and len(k._jit.overloads) > 0,  # called through numba
    }
    for k in accel.kernels()
}
with open(stats_path, "w") as fh:
    json.dump({"kernels": stats, "codes": codes, "numba": "numba" in sys.modules}, fh)
"""


def _many_flows_pcap(path: Path, flows: int) -> None:
    """Ethernet/IPv4 SYNs of ``flows`` connections, then RSTs for every tenth: more flows
    open at once than the compiled table's first hash index holds, so it grows."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]

    def frame(i: int, flags: int, t: int) -> bytes:
        sport = 10000 + i % 50000
        src = bytes([10, 1, (i >> 8) & 0xFF, i & 0xFF])
        tcp = struct.pack("!HHIIBBHHH", sport, 80, 1000 + i, 0, 5 << 4, flags, 65535, 0, 0)
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 40, i & 0xFFFF, 0, 64, 6, 0, src, bytes([10, 2, 0, 1])
        )
        eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
        data = eth + ip + tcp
        return struct.pack("<IIII", 1_700_000_000 + t, 0, len(data), len(data)) + data

    t = 0
    for i in range(flows):
        out.append(frame(i, 0x02, t))
        t += i % 2
    for i in range(0, flows, 10):
        out.append(frame(i, 0x04, t))
    path.write_bytes(b"".join(out))


def _run_all(mode: str, captures: list[str], tmp: Path) -> tuple[dict, list[bytes]]:
    out_dir = tmp / mode
    out_dir.mkdir()
    stats_path = tmp / f"{mode}.json"
    env = _env(**({"PCAPIP_PURE_PYTHON": "1"} if mode == "pure" else {}))
    if mode == "jit":
        env["PCAPIP_NO_AOT"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, mode, str(out_dir), str(stats_path), *captures],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{mode} run failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    stats = json.loads(stats_path.read_text())
    csvs = [(out_dir / f"{i}.csv").read_bytes() for i in range(len(captures))]
    return stats, csvs


def test_captures_run_ahead_of_time_and_match_the_jit_and_pure_python(tmp_path: Path) -> None:
    require_built()
    many = tmp_path / "many-flows.pcap"
    _many_flows_pcap(many, 2300)
    captures = [str(PCAPS / name) for name in CAPTURES] + [str(many)]

    aot, aot_csv = _run_all("aot", captures, tmp_path)
    used = {name for name, s in aot["kernels"].items() if s["aot"] > 0}
    assert used >= ALL_KERNELS, f"kernels never run ahead of time: {ALL_KERNELS - used}"
    assert {n: s["fallbacks"] for n, s in aot["kernels"].items() if s["fallbacks"]} == {}
    assert not any(s["jit"] for s in aot["kernels"].values())
    assert aot["numba"] is False, "the ahead-of-time run imported numba"

    pure, pure_csv = _run_all("pure", captures, tmp_path)
    jit, jit_csv = _run_all("jit", captures, tmp_path)
    assert all(s["aot"] == 0 for s in jit["kernels"].values())
    assert {n for n, s in jit["kernels"].items() if s["jit"]} >= ALL_KERNELS
    assert all(s["aot"] == 0 and not s["jit"] for s in pure["kernels"].values())

    # the damaged capture reports its error the same way on every path
    assert aot["codes"] == pure["codes"] == jit["codes"]
    assert aot["codes"].get(str(PCAPS / "bad-block-length.pcapng")) == 2
    for cap, a, p, j in zip(captures, aot_csv, pure_csv, jit_csv, strict=True):
        assert a.count(b"\n") > 1, f"{cap}: no flows in the CSV"
        assert a == p, f"{cap}: ahead-of-time CSV differs from pure Python"
        assert a == j, f"{cap}: ahead-of-time CSV differs from the JIT"


def test_analyze_does_not_import_numba_with_the_module() -> None:
    require_built()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pcapip", "analyze",
         str(PCAPS / "troubleshooting.pcap"), "--format", "csv"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()]
    assert "pcapip.flows.kernel" in imported  # the kernels were imported (and run)
    assert not [m for m in imported if m.split(".")[0] in ("numba", "llvmlite")]


# ---------------------------------------------------------------- argument checks
_FALLBACKS = r"""
import json, struct, sys
import numpy as np
from pcapip.sources import accel, walk
from pcapip.decode import decoder
from pcapip.decode.kernel import decode_frames
from pcapip.flows import kernel as K
from pcapip.flows import layout as L

out = {}
k = walk.walk_pcap
assert k.aot() is not None, "module not current"
fn = k.compiled()
assert fn is k.aot()

# three little-endian microsecond records, the last one cut short
recs = b""
for i, size in enumerate((60, 61, 62)):
    recs += struct.pack("<IIII", 1_700_000_000 + i, 250 * i, size, size + 4) + bytes(range(size))
body = np.frombuffer(recs[:-5], dtype=np.uint8).copy()

def walk_with(f, buf, dt=np.int64, end=None):
    outs = [np.zeros(8, dtype=dt) for _ in range(4)]
    r = f(buf, 0, len(body) if end is None else end, False, 16, 1000, 262144, 8, tuple(outs))
    return [[int(v) for v in r], [o.tolist() for o in outs]]

def counts(kern):
    return [kern.aot_calls, kern.aot_fallbacks]

lists = [[0] * 8 for _ in range(4)]
r = k.py_func(memoryview(body), 0, len(body), False, 16, 1000, 262144, 8, tuple(lists))
out["pure"] = [[int(v) for v in r], [v[:] for v in lists]]
out["valid"] = walk_with(fn, body)
out["valid_counts"] = counts(k)

out["np_scalar"] = walk_with(fn, body, end=np.int32(len(body)))
out["np_scalar_counts"] = counts(k)

cases = {
    "out_int32": (body, np.int32),
    "buf_int8": (body.view(np.int8), np.int64),
    "buf_strided": (np.repeat(body, 2)[::2], np.int64),
    "buf_readonly": (body.copy(), np.int64),
}
cases["buf_readonly"][0].setflags(write=False)
for name, (buf, dt) in cases.items():
    before = counts(k)
    got = walk_with(fn, buf, dt)
    after = counts(k)
    out[name] = {
        "got": got,
        "jit": walk_with(k.jit(), buf, dt),
        "aot_delta": after[0] - before[0],
        "fallback_delta": after[1] - before[1],
    }

# decode: one output column of the wrong width
d = decode_frames.compiled()
frame = bytes(12) + b"\x08\x00" + bytes([0x45, 0, 0, 40]) + bytes(16) + bytes(20)
data = np.frombuffer(frame, dtype=np.uint8).copy()
one = np.zeros(1, dtype=np.int64)
def decode_with(f, status_dt):
    cols = {
        name: np.zeros(1, dtype=status_dt if name == "status" else dt)
        for name, dt in decoder.OUTPUT_COLUMNS
    }
    size = np.array([len(frame)], dtype=np.int64)
    frames = (one, size, size, np.ones(1, dtype=np.int32))
    f(data, frames, decoder.toa_mask({200}), decoder.tunnel_table(), 1, tuple(cols.values()))
    return {name: col.tolist() for name, col in cols.items()}
before = counts(decode_frames)
out["decode_valid"] = decode_with(d, np.uint16)
out["decode_bad"] = decode_with(d, np.uint8)
out["decode_bad_jit"] = decode_with(decode_frames.jit(), np.uint8)
after = counts(decode_frames)
out["decode_counts"] = [after[0] - before[0], after[1] - before[1]]

# flows: the 2-D table in Fortran order
S = np.zeros((6, L.NFIELDS), dtype=np.int64)
S[:, L.K_HASH] = [5, 5, 6, 900, 13, 7]
rows = np.array([0, 1, 2, 3, 4, 5], dtype=np.int64)
def unindex_with(f, table):
    H = np.zeros(16, dtype=np.int64)
    for s in rows:  # (the index as the loop builds it: kernel_keys.entry, linear probing)
        pos = int(table[s, L.K_HASH]) & 15
        while H[pos]:
            pos = (pos + 1) & 15
        H[pos] = (int(table[s, L.K_HASH]) << 32) | (int(s) + 1)
    f(H, table, rows[:2], 2)
    return H.tolist()
before = counts(K.unindex)
out["unindex_valid"] = unindex_with(K.unindex.compiled(), S)
out["unindex_fortran"] = unindex_with(K.unindex.compiled(), np.asfortranarray(S))
after = counts(K.unindex)
out["unindex_counts"] = [after[0] - before[0], after[1] - before[1]]
print(json.dumps(out))
"""


def test_mismatched_arguments_fall_back_to_the_jit_instead_of_crashing() -> None:
    require_built()
    proc = subprocess.run(
        [sys.executable, "-c", _FALLBACKS], env=_env(), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode} (negative: killed by a signal):\n{proc.stderr[-3000:]}"
    )
    out = json.loads(proc.stdout)

    (n, pos, status, _), cols = out["valid"]
    assert (n, status) == (2, 1)  # two whole records, the third needs more bytes
    assert cols[1][:2] == [60, 61] and cols[2][:2] == [64, 65]
    assert out["valid"] == out["pure"]
    assert out["valid_counts"] == [1, 0]
    assert out["np_scalar"] == out["valid"]
    assert out["np_scalar_counts"] == [2, 0]  # numpy integers are fine for the compiled code

    for name in ("out_int32", "buf_int8", "buf_strided", "buf_readonly"):
        case = out[name]
        assert (case["aot_delta"], case["fallback_delta"]) == (0, 1), name
        assert case["got"] == case["jit"], name
    for name in ("buf_strided", "buf_readonly"):  # same values, other layout
        assert out[name]["got"] == out["valid"], name
    # int32 outputs: the same records; only the nanosecond timestamps wrap
    assert out["out_int32"]["got"][0] == out["valid"][0]
    assert out["out_int32"]["got"][1][:3] == out["valid"][1][:3]

    assert out["decode_counts"] == [1, 1]
    assert out["decode_bad"] == out["decode_bad_jit"]
    assert out["decode_bad"] == out["decode_valid"]  # the status value fits either width
    assert out["decode_valid"]["ipver"] == [4]
    assert out["decode_valid"]["status"] != [0]  # IP protocol 0: not TCP/UDP

    assert out["unindex_counts"] == [1, 1]
    assert out["unindex_fortran"] == out["unindex_valid"]
    # (an index entry is the row number plus one in its low 32 bits, kernel_keys.entry)
    assert sorted(v & 0xFFFFFFFF for v in out["unindex_valid"] if v) == [3, 4, 5, 6]


def test_checker_parses_the_declared_signatures() -> None:
    for name in KERNEL_MODULES:
        __import__(name)
    sigs = {k.__name__: accel.parse_signature(k.signature or "") for k in accel.kernels()}
    ret, args = sigs["walk_pcap"]
    assert ret == "UniTuple(i8, 4)"
    assert args[:4] == [("u1", 1, "C"), ("i8", 0, ""), ("i8", 0, ""), ("b1", 0, "")]
    ret, args = sigs["unindex"]
    assert ret == "void" and args == [("i8", 1, "C"), ("i8", 2, "C"), ("i8", 1, "C"), ("i8", 0, "")]
    assert accel.parse_signature("f8(f8[:], int32)") == ("f8", [("f8", 1, "A"), ("i4", 0, "")])
    for bad in ("i8", "(i8)", "i8(str)", "i8(i8[::2])", "i8(i8[::1, :])"):
        with pytest.raises(ValueError):
            accel.parse_signature(bad)


def test_checker_reads_tuples_of_arrays() -> None:
    """A struct of arrays (a tuple argument) is checked element by element: one wrong column
    sends the call to the JIT instead of letting machine code read the wrong memory."""
    import numpy as np

    sig = "i8(Tuple((u1[::1], i8[:, ::1])), UniTuple(i4[::1], 2), i8)"
    ret, args = accel.parse_signature(sig)
    assert ret == "i8"
    assert args == [[("u1", 1, "C"), ("i8", 2, "C")], [("i4", 1, "C")] * 2, ("i8", 0, "")]
    for bad in ("i8(Tuple(u1[::1]))", "i8(Tuple(()))", "i8(UniTuple(i8, x))", "i8(Tuple((str,)))"):
        with pytest.raises(ValueError):
            accel.parse_signature(bad)
    matches = accel.arg_checker(sig)
    cols = (np.zeros(4, np.uint8), np.zeros((2, 3), np.int64))
    pair = (np.zeros(2, np.int32), np.zeros(2, np.int32))
    assert matches((cols, pair, 7))
    assert not matches(((cols[0], cols[1].astype(np.int32)), pair, 7))  # wrong dtype inside
    assert not matches(((cols[0], np.asfortranarray(cols[1])), pair, 7))  # not C-contiguous
    assert not matches((cols[:1], pair, 7))  # too short
    assert not matches((list(cols), pair, 7))  # a list is not a tuple
    assert not matches((cols, pair, 2**63))  # scalar out of range


# ---------------------------------------------------------------- staleness
def test_a_changed_fingerprint_means_the_jit(fresh_aot, monkeypatch: pytest.MonkeyPatch) -> None:
    require_built()
    from pcapip.sources import walk

    k = walk.walk_pcap
    assert k.compiled() is k.aot() is not None

    real = accel.kernel_fingerprint
    monkeypatch.setattr(accel, "kernel_fingerprint", lambda kern: real(kern) ^ 1)
    accel.reset_aot()
    assert k.aot() is None
    assert k.compiled() is k.jit()
    assert not accel.aot_current()


def test_a_changed_constant_means_the_jit(fresh_aot, monkeypatch: pytest.MonkeyPatch) -> None:
    require_built()
    from pcapip.sources import walk

    pcap, pcapng = walk.walk_pcap, walk.walk_pcapng
    fp_pcap, fp_ng = accel.kernel_fingerprint(pcap), accel.kernel_fingerprint(pcapng)
    # BT_EPB is frozen into walk_pcapng only; WALK_NEED_MORE into both
    monkeypatch.setattr(walk, "BT_EPB", 7)
    assert accel.kernel_fingerprint(pcap) == fp_pcap
    assert accel.kernel_fingerprint(pcapng) != fp_ng
    accel.reset_aot()
    assert pcap.compiled() is pcap.aot() is not None
    assert pcapng.compiled() is pcapng.jit()

    monkeypatch.setattr(walk, "WALK_NEED_MORE", 11)
    accel.reset_aot()
    assert pcap.compiled() is pcap.jit()


def test_fingerprint_follows_module_attributes_and_source(tmp_path: Path) -> None:
    source = tmp_path / "kern_src.py"
    source.write_text("def f(a):\n    return cfg.LIMIT + a\n")
    cfg = types.ModuleType("cfg")
    cfg.LIMIT = 5
    cfg.OTHER = 1
    namespace: dict = {"cfg": cfg}
    exec(compile(source.read_text(), str(source), "exec"), namespace)
    f = namespace["f"]

    def fp() -> str:
        accel.reset_aot()  # also forgets cached source bytes
        return accel.fingerprint_text(f, "i8(i8)")

    base = fp()
    cfg.OTHER = 2
    assert fp() == base  # not referenced by the code
    cfg.LIMIT = 6
    changed = fp()
    assert changed != base
    source.write_text("def f(a):\n    return cfg.LIMIT + a  # edited\n")
    assert fp() != changed
    assert accel.fingerprint_text(f, "i4(i4)") != fp()


_HELPERS_SRC = """
from pcapip.sources.accel import kernel_helper

LIMIT = 5
SCALE = 3
UNUSED = 1


@kernel_helper
def scaled(a):
    return a * SCALE


@kernel_helper
def clipped(a):
    return min(scaled(a), LIMIT * 10)


def kern(xs, out):
    for i in range(xs.shape[0]):
        out[i] = clipped(xs[i])
    return xs.shape[0]
"""


def _load_module(path: Path, name: str) -> types.ModuleType:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_helpers_run_as_plain_python_and_compiled_inlined(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "kern_helpers.py"
    path.write_text(_HELPERS_SRC)
    mod = _load_module(path, "kern_helpers")
    assert accel.is_helper(mod.scaled) and accel.is_helper(mod.clipped)
    assert not accel.is_helper(mod.kern)
    assert mod.clipped(4) == 12 and mod.clipped(40) == 50  # the decorator changed nothing
    assert accel.compile_target(mod.scaled) is mod.scaled  # calls no helper: itself
    target = accel.compile_target(mod.kern)
    assert target is not mod.kern and target.__code__ is mod.kern.__code__
    assert mod.kern.__globals__["clipped"] is mod.clipped  # the module is left alone
    inner = target.__globals__["clipped"]
    assert inner is not mod.clipped and inner.py_func.__globals__["scaled"] is not mod.scaled

    import numba

    xs = np.arange(30, dtype=np.int64)
    pure, compiled = np.zeros(30, np.int64), np.zeros(30, np.int64)
    mod.kern(xs, pure)
    numba.njit(_nrt=False)(target)(xs, compiled)
    assert pure.tolist() == [min(3 * x, 50) for x in range(30)]
    assert compiled.tolist() == pure.tolist()


def test_fingerprint_follows_the_helpers_a_kernel_calls(tmp_path: Path) -> None:
    path = tmp_path / "kern_helpers_fp.py"
    path.write_text(_HELPERS_SRC)
    mod = _load_module(path, "kern_helpers_fp")
    # SCALE is named only by scaled, a helper of the helper the kernel calls
    assert "SCALE" not in mod.kern.__code__.co_names + mod.clipped.__code__.co_names

    def fp() -> str:
        accel.reset_aot()  # also forgets cached source bytes
        return accel.fingerprint_text(mod.kern, "i8(i8[::1], i8[::1])")

    base = fp()
    mod.UNUSED = 2
    assert fp() == base
    mod.SCALE = 4
    assert fp() != base
    mod.SCALE = 3
    assert fp() == base
    mod.LIMIT = 6
    assert fp() != base
    mod.LIMIT = 5
    path.write_text(_HELPERS_SRC.replace("return a * SCALE", "return a * SCALE  # edited"))
    assert fp() != base


def test_a_helper_from_another_file_is_inlined(tmp_path: Path) -> None:
    """A kernel may call helpers of any module; the fingerprint follows their file."""
    import numpy as np

    (tmp_path / "far_helpers.py").write_text(_HELPERS_SRC)
    far = _load_module(tmp_path / "far_helpers.py", "far_helpers")
    (tmp_path / "near_kern.py").write_text(
        "def kern(xs, out):\n    out[0] = clipped(xs[0])\n    return 1\n"
    )
    near = _load_module(tmp_path / "near_kern.py", "near_kern")
    near.clipped = far.clipped
    import numba

    out = np.zeros(1, np.int64)
    numba.njit(_nrt=False)(accel.compile_target(near.kern))(np.array([7], np.int64), out)
    assert out[0] == far.clipped(7) == 21

    def fp() -> str:
        accel.reset_aot()  # also forgets cached source bytes
        return accel.fingerprint_text(near.kern, "i8(i8[::1], i8[::1])")

    base = fp()
    (tmp_path / "far_helpers.py").write_text(_HELPERS_SRC.replace("a * SCALE", "a * SCALE + 0"))
    assert fp() != base


# a package whose kernel calls a helper in another file, which names a constant of a third
_STALE_PKG = {
    "__init__.py": "",
    "consts.py": "STEP = 1\n",
    "helpers.py": (
        "from pcapip.sources.accel import kernel_helper\n\nfrom .consts import STEP\n\n\n"
        "@kernel_helper\ndef bump(x):\n    return x + STEP\n"
    ),
    "kern.py": (
        "from pcapip.sources.accel import kernel\n\nfrom .helpers import bump\n\n\n"
        '@kernel("i8(i8)")\ndef kern(x):\n    return bump(x) * 2\n\n\n'
        "def plain(x):\n    return bump(x) * 2\n"
    ),
}
# run in a fresh process: the kernel through pcapip's JIT, and the same code through numba's
# own cache=True (the control: numba watches kern.py only)
_STALE_RUN = """
import json, numba
from pcapip.sources import accel
from stalepkg import kern as m
d = m.kern.jit()
plain = numba.njit(cache=True, _nrt=False)(accel.compile_target(m.plain))
print(json.dumps({"got": d(5), "hits": sum(d.stats.cache_hits.values()),
                  "misses": sum(d.stats.cache_misses.values()), "plain": plain(5)}))
"""


def test_the_jit_cache_follows_helpers_and_constants_in_other_files(tmp_path: Path) -> None:
    """Edits to a helper's file, or to a constant a helper imports, reach the JIT on the
    next run instead of numba's cached machine code of the kernel (whose file is unchanged);
    an unchanged kernel still loads from the cache."""
    pkg = tmp_path / "stalepkg"
    pkg.mkdir()
    for name, text in _STALE_PKG.items():
        (pkg / name).write_text(text)
    env = _env(PCAPIP_NO_AOT="1", NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])

    def run() -> dict:
        proc = subprocess.run(
            [sys.executable, "-c", _STALE_RUN], env=env, capture_output=True, text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    first = run()
    assert (first["got"], first["misses"], first["hits"]) == (12, 1, 0)
    again = run()
    assert (again["got"], again["hits"], again["misses"]) == (12, 1, 0)  # loaded, not compiled

    (pkg / "consts.py").write_text("STEP = 3\n")  # neither the kernel's nor the helper's file
    edited = run()
    assert (edited["got"], edited["misses"]) == (16, 1)
    assert edited["plain"] == 12, "control: numba's own cache=True no longer goes stale here"
    assert run()["hits"] == 1

    helpers = (pkg / "helpers.py").read_text().replace("x + STEP", "x + STEP * 10")
    (pkg / "helpers.py").write_text(helpers)
    assert (run()["got"]) == (5 + 30) * 2


def test_a_changed_helper_constant_means_the_jit(
    fresh_aot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Editing what only a helper uses invalidates the ahead-of-time code of its kernel."""
    require_built()
    from pcapip.decode import kernel as dk

    k = dk.decode_frames
    assert "MAX_VLAN_TAGS" not in k.py_func.__code__.co_names  # only vlan_tags names it
    assert "MAX_VLAN_TAGS" in dk.vlan_tags.__code__.co_names
    assert k.compiled() is k.aot() is not None
    fp = accel.kernel_fingerprint(k)
    monkeypatch.setattr(dk, "MAX_VLAN_TAGS", 2)
    assert accel.kernel_fingerprint(k) != fp
    accel.reset_aot()
    assert k.compiled() is k.jit()


def test_no_aot_switch_keeps_the_module_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(accel.NO_AOT_ENV, "1")
    accel.reset_aot()
    try:
        assert accel.aot_module() is None
        assert not accel.aot_current()
    finally:
        monkeypatch.undo()
        accel.reset_aot()


def test_builder_refuses_a_missing_output_directory(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pcapip.build_kernels", "--output-dir", str(tmp_path / "nope")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- numba without pycc
# numba has deprecated numba.pycc (pyproject.toml pins numba to releases that have it); a
# release without it must cost speed only: the build says so and stops, and analyze runs
# the same kernels on the JIT with the same output.
_NO_PYCC = '''
import sys


class _NoPycc:
    """numba without numba.pycc, as a release that drops it will be."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "numba.pycc" or name.startswith("numba.pycc."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoPycc)
'''


def _no_pycc_env(tmp_path: Path, **set_vars: str) -> dict[str, str]:
    """The environment of a process whose numba has no pycc (a sitecustomize hides it)."""
    shim = tmp_path / "no-pycc"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(_NO_PYCC)
    env = _env(**set_vars)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim), env.get("PYTHONPATH")]))
    return env


def test_a_numba_without_pycc_stops_the_build_with_one_clear_line(tmp_path: Path) -> None:
    import tomllib

    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pcapip.build_kernels", "--output-dir", str(out)],
        env=_no_pycc_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    line = lines[0]
    assert line.startswith("pcapip.build_kernels: numba ") and "numba.pycc" in line
    assert "numba's JIT instead" in line and "same results" in line
    # it names the numba range pyproject.toml declares (as pcapip's installed metadata has it)
    declared = next(
        d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        if d.startswith("numba")
    )
    named = line.rsplit("pip install '", 1)[1].rstrip("'")
    assert set(named.removeprefix("numba").split(",")) == set(
        declared.removeprefix("numba").split(",")
    )
    assert list(out.iterdir()) == []  # no module, no leftover build directory


def _analyze(capture: str, env: dict[str, str]) -> tuple[int, bytes, list[str]]:
    """(exit status, CSV on stdout, modules imported) of the real ``pcapip analyze``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pcapip", "analyze", capture,
         "--format", "csv", "--no-progress"],
        env=env,
        capture_output=True,
        timeout=600,
    )  # fmt: skip
    lines = proc.stderr.decode(errors="replace").splitlines()
    imported = [ln.rsplit("|", 1)[-1].strip() for ln in lines if ln.startswith("import time:")]
    return proc.returncode, proc.stdout, imported


def test_without_pycc_analyze_runs_the_jit_and_writes_the_same_csv(tmp_path: Path) -> None:
    """The JIT (what is left when numba drops pycc) against the compiled module when it is
    built, and against the pure-Python loops (no numba at all) always."""
    many = tmp_path / "many-flows.pcap"
    _many_flows_pcap(many, 48_000)  # 52,800 frames: past every COMPILE_MIN_*, so the JIT runs
    captures = [
        str(PCAPS / name)
        for name in ("troubleshooting.pcap", "haproxy-v2.pcap", "flow-toa.pcap",
                     "multi-section.pcapng.gz", "bad-block-length.pcapng")
    ] + [str(many)]  # fmt: skip
    no_pycc = _no_pycc_env(tmp_path, PCAPIP_NO_AOT="1")
    references = [("pure Python", _env(PCAPIP_PURE_PYTHON="1"))]
    built, stale = _module_state()
    if built and not stale:
        references.append(("the compiled module", _env()))
    codes = {}
    for cap in captures:
        code, csv, imported = _analyze(cap, no_pycc)
        codes[cap] = code
        assert "numba.pycc" not in imported
        if cap == str(many):
            assert "numba" in imported, "the JIT did not run"
            assert "pcapip._kernels" not in imported
        assert csv.count(b"\n") > 1, f"{cap}: no flows in the CSV"
        for name, env in references:
            ref_code, ref_csv, _ = _analyze(cap, env)
            assert code == ref_code, f"{cap}: exit {code} on the JIT, {ref_code} on {name}"
            if csv != ref_csv:  # name the first line that differs (a whole-CSV diff is huge)
                pairs = zip(csv.splitlines(), ref_csv.splitlines(), strict=False)
                first = next(((a, b) for a, b in pairs if a != b), None)
                raise AssertionError(f"{cap}: the JIT's CSV differs from {name}: {first}")
    assert codes.pop(str(PCAPS / "bad-block-length.pcapng")) == 2  # damage: reported, not lost
    assert set(codes.values()) == {0}


def test_the_build_keeps_numbas_temporary_files_in_its_own_directory(tmp_path: Path) -> None:
    """numba's compiler check leaves temp.c / temp.cxx directories behind in the system's
    temporary directory (one pair per build); the build makes them inside its own
    directory, which it removes."""
    import tempfile

    platform = pytest.importorskip("numba.pycc.platform")
    from pcapip.build_kernels import _temporary_files_in

    before = tempfile.tempdir
    with _temporary_files_in(tmp_path):
        made = Path(tempfile.mkdtemp())
        platform.external_compiler_works.__wrapped__()
    assert made.parent == tmp_path and tempfile.tempdir == before
    outside = [p for p in Path(tempfile.gettempdir()).glob("tmp*/temp.c*")
               if p.stat().st_mtime >= made.stat().st_mtime]
    assert not outside
