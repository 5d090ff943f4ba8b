"""Turn a FrameBatch into Packets columns with the decode kernel."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import lru_cache

import numpy as np

from pcapip.sources import accel
from pcapip.sources.batch import FrameBatch

from .columns import Packets
from .kernel import COLUMNS, decode_frames
from .tunnels import udp_tunnel_ports

DEFAULT_TOA_KINDS: frozenset[int] = frozenset({200, 254, 253, 201, 250, 252, 249, 28})

# Without the ahead-of-time kernels (pcapip.build_kernels), batches at least this large
# compile even if nothing imported numba yet (~0.3 s to import and load the cached
# kernel, what the pure loop spends on ~50k frames); with them, every batch compiles.
COMPILE_MIN_PACKETS = 50_000
# Once numba is loaded (the source decided the capture is large), batches this large compile.
COMPILED_LOADED_MIN = 128

# (name, dtype) of every column the kernel fills, in the order of its ``cols`` tuple
OUTPUT_COLUMNS: tuple[tuple[str, np.dtype], ...] = tuple(
    (name, np.dtype(code)) for name, code in COLUMNS
)


@lru_cache(maxsize=32)
def _toa_masks(kinds: frozenset[int]) -> tuple[np.ndarray, list[bool]]:
    mask = np.zeros(256, dtype=np.bool_)
    for k in kinds:
        if not isinstance(k, int | np.integer) or not 0 <= int(k) <= 255:
            raise ValueError(f"TOA option kind must be an integer 0-255, got {k!r}")
        mask[int(k)] = True
    return mask, mask.tolist()


def toa_mask(kinds: Collection[int]) -> np.ndarray:
    """The 256-entry bool mask the decoder uses for ``OPT_TOA_CANDIDATE``."""
    return _toa_masks(frozenset(kinds))[0]


@lru_cache(maxsize=32)
def _tunnel_tables(ports: frozenset[tuple[int, int]]) -> tuple[np.ndarray, list[int]]:
    table = np.zeros(65536, dtype=np.uint8)
    for port, kind in ports:
        if not 0 < port < 65536:
            raise ValueError(f"UDP tunnel port must be 1-65535, got {port!r}")
        table[port] = kind
    return table, table.tolist()


def tunnel_table(ports: Mapping[int, int] | None = None) -> np.ndarray:
    """The 65536-entry table the decoder uses to open UDP tunnels: TUN_* per destination
    port (default :func:`~pcapip.decode.tunnels.udp_tunnel_ports`)."""
    return _tunnel_tables(frozenset((ports or udp_tunnel_ports()).items()))[0]


def _backend(requested: str | None, n: int) -> str:
    want = (
        n >= COMPILE_MIN_PACKETS
        or accel.aot_current()
        or (accel.jit_loaded() and n >= COMPILED_LOADED_MIN)
    )
    return accel.choose(requested, want_compiled=want)


def _check_bounds(batch: FrameBatch) -> None:
    """A compiled kernel does no bounds checks: refuse frames that lie outside the buffer."""
    if len(batch) == 0:
        return
    if int(batch.offset.min()) < 0 or int(batch.caplen.min()) < 0:
        raise ValueError("FrameBatch has a negative frame offset or length")
    if int((batch.offset + batch.caplen).max()) > batch.data.shape[0]:
        raise ValueError("FrameBatch has frames extending past its data buffer")


def decode(
    batch: FrameBatch,
    *,
    toa_kinds: Collection[int] = DEFAULT_TOA_KINDS,
    tunnel_ports: Mapping[int, int] | None = None,
    backend: str | None = None,
) -> Packets:
    """Decode every frame of the batch into columns (one row per frame, none dropped).

    Frames that cannot be decoded to TCP/UDP keep their row with ST_* bits
    saying why. ``toa_kinds`` sets which TCP option kinds raise
    ``OPT_TOA_CANDIDATE``; ``tunnel_ports`` maps UDP destination ports to the tunnel
    opened there (default: VXLAN 4789, GENEVE 6081); ``backend`` ("auto", "pure", "compiled") picks the
    loop implementation (auto: compiled when the ahead-of-time kernels are
    built, else for large batches or once numba is loaded, pure otherwise;
    ``PCAPIP_PURE_PYTHON=1`` forces pure).
    """
    n = len(batch)
    data = batch.data
    if data.dtype != np.uint8 or data.ndim != 1 or not data.flags.c_contiguous:
        data = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    offset = np.ascontiguousarray(batch.offset, dtype=np.int64)
    caplen = np.ascontiguousarray(batch.caplen, dtype=np.int64)
    origlen = np.ascontiguousarray(batch.origlen, dtype=np.int64)
    linktype = np.ascontiguousarray(batch.linktype, dtype=np.int32)
    _check_bounds(batch)
    mask_np, mask_list = _toa_masks(frozenset(toa_kinds))
    tun_np, tun_list = _tunnel_tables(frozenset((tunnel_ports or udp_tunnel_ports()).items()))
    chosen = _backend(backend, n)
    if chosen == accel.BACKEND_COMPILED:
        outs = tuple(np.empty(n, dtype=dt) for _, dt in OUTPUT_COLUMNS)
        frames = (offset, caplen, origlen, linktype)
        decode_frames.run(chosen, data, frames, mask_np, tun_np, n, outs)
        cols = dict(zip((name for name, _ in OUTPUT_COLUMNS), outs, strict=True))
    else:
        lists = tuple([0] * n for _ in OUTPUT_COLUMNS)
        frame_lists = (offset.tolist(), caplen.tolist(), origlen.tolist(), linktype.tolist())
        decode_frames.py_func(memoryview(data), frame_lists, mask_list, tun_list, n, lists)
        cols = {
            name: np.array(values, dtype=dt)
            for (name, dt), values in zip(OUTPUT_COLUMNS, lists, strict=True)
        }
    return Packets(
        frame=batch.numbers(),
        ts_ns=np.asarray(batch.ts_ns, dtype=np.int64),
        caplen=caplen,
        origlen=origlen,
        linktype=linktype,
        iface=np.asarray(batch.iface, dtype=np.int32),
        frame_off=offset,
        data=data,
        **cols,
    )


def warm_compiled() -> float:
    """Load the compiled engine kernels: the ahead-of-time module (milliseconds), or else
    numba with its cached kernels (compiling them on a first-ever run).

    Returns the seconds it took. Sources and decode do this on their own when
    a capture is large enough; calling it up front moves that one-time cost
    (~0.3-0.5 s: the numba import and the cache load) out of the first batch,
    e.g. to report it separately or to pay it while a user is still typing.
    Returns 0.0 without doing anything when the compiled path is unavailable
    or switched off.
    """
    import time

    from pcapip.sources import walk

    t0 = time.perf_counter()
    if accel.choose(None, want_compiled=True) != accel.BACKEND_COMPILED:
        return 0.0
    buf = np.zeros(64, dtype=np.uint8)
    i64 = [np.zeros(1, dtype=np.int64) for _ in range(4)]
    walk.walk_pcap.compiled()(buf, 0, 0, False, 16, 1000, 262144, 1, tuple(i64))
    i32 = [np.zeros(1, dtype=np.int32) for _ in range(3)]
    ifs = (i32[0], i64[0], i64[1], i64[2], i64[3], i64[0])
    outs = (i64[0], i64[1], i64[2], i64[3], i32[1], i32[2], i64[0])
    walk.walk_pcapng.compiled()(buf, 0, 0, False, 0, ifs, 0, 1 << 20, 1, outs)
    outs = tuple(np.empty(1, dtype=dt) for _, dt in OUTPUT_COLUMNS)
    mask = _toa_masks(DEFAULT_TOA_KINDS)[0]
    one = np.zeros(1, dtype=np.int64)
    frames = (one, one, one, np.ones(1, dtype=np.int32))
    decode_frames.compiled()(buf, frames, mask, tunnel_table(), 0, outs)
    accel.settle()
    return time.perf_counter() - t0
