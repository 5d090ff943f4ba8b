"""Findings that compare flows with each other, judged once every flow is known.

A missing client address only means something next to flows that have one (same
origin port), a TOA with no room left only on a port that uses TOA, a PROXY header
naming the connection's own source is the proxy's health check, and ``--trusted``
judges every flow that announced a client. Every pass reads the packed rows a slice
at a time (``Cols``), so a flood's ten million rows hold no column of their own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import numpy as np

from pcapip.flows.packed import NO_IP, NULL, DiskStore, MemStore, PackedRows, Vocab, distinct
from pcapip.flows.reorder import SLICE


def _in(nets: Sequence[Any], ip: str) -> bool:
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(a.version == n.version and a in n for n in nets)


def _same_ip(a: str | None, b: str | None) -> bool:
    """Whether two address texts name the same address (IPv6 text has many spellings)."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


class Extra:
    """Findings that compare flows, gathered as (rows, code, messages, frames, captures)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, str, list[str], np.ndarray, np.ndarray]] = []

    def add(
        self, rows: np.ndarray, code: str, msgs: list[str], frames: np.ndarray, caps: np.ndarray
    ) -> None:
        if rows.size:
            self.parts.append((rows, code, msgs, frames, caps))


class Cols:
    """Column reads a slice of rows at a time: no whole column of a long table is held."""

    def __init__(self, c: MemStore | DiskStore, n: int) -> None:
        self.c, self.n = c, n

    def where(self, test: Any) -> np.ndarray:
        """The rows for which ``test(read)`` is true, ``read(name)`` giving a slice's
        column."""
        out = []
        for lo in range(0, self.n, SLICE):
            hi = min(self.n, lo + SLICE)
            got = np.flatnonzero(test(lambda name, lo=lo, hi=hi: self.c.slice(name, lo, hi)))
            if got.size:
                out.append(got + lo)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def at(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Column ``name`` at ``rows`` (sorted), reading only the slices that hold them."""
        if rows.size == 0:
            return self.c.slice(name, 0, 0)
        parts = []
        cuts = np.searchsorted(rows, np.arange(0, self.n + SLICE, SLICE))
        for k in np.flatnonzero(np.diff(cuts)).tolist():
            r = rows[cuts[k] : cuts[k + 1]]
            lo = k * SLICE
            parts.append(self.c.slice(name, lo, int(r[-1]) + 1)[r - lo])
        return np.concatenate(parts)


def where_read(c: Cols, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames, captures) where each row's client address was read, else its first packet."""
    hcap = c.at("header_frame_cap", rows)
    have = hcap != NULL
    frames = np.where(have, c.at("header_frame_frame", rows), c.at("first_frame", rows))
    caps = np.where(have, hcap, c.at("capture", rows))
    return frames, caps


def missing_client(toa_port: Any, pp_port: Any, hs_done: Any, spoke: Any) -> Any:
    """Whether a flow that carried no client address is missing one (scalars or arrays).

    On a port where other flows carry TOA the handshake ACK (or the first data) decides:
    that is where the option would have been. On a port where they carry a PROXY header
    only the first data does: a connection whose capture ended before it sent anything
    may still have been about to send its header.
    """
    return (toa_port & (hs_done | spoke)) | (pp_port & spoke)


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_set)`` for sorted distinct ``sorted_set`` (np.isin sorts a
    concatenation of both)."""
    if sorted_set.size == 0:
        return np.zeros(values.size, dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    return sorted_set[at] == values


def cross_flow(p: PackedRows, vocab: Vocab, trusted: Sequence[Any] | None) -> Extra:
    c = Cols(p.cols, len(p))
    out = Extra()
    _missing(c, vocab, out)
    _self_addressed(c, vocab, out)
    _no_room(c, vocab, out)
    if trusted is not None:
        _untrusted(c, vocab, trusted, out)
    return out


def _key(read: Any, udp: int) -> np.ndarray:
    """One number per (transport, origin address, origin port)."""
    k = read("origin_ip") * (1 << 18)
    k += read("origin_port") * 2
    k += read("transport") == udp
    return k


def _missing(c: Cols, vocab: Vocab, out: Extra) -> None:
    """``client.missing``: no client address, on an origin port where some flow carried
    one, by TOA or by a PROXY header."""
    code = vocab.code
    udp, good, toa_m, none_m = code("udp"), code("ok"), code("toa"), code("none")
    said = c.where(lambda r: (r("client_ip") != NO_IP) & (r("status") == good))
    said_key = _key(lambda name: c.at(name, said), udp)
    said_toa = c.at("method", said) == toa_m
    with_toa, with_pp = distinct(said_key[said_toa]), distinct(said_key[~said_toa])
    if not (with_toa.size or with_pp.size):
        return
    rows = c.where(
        lambda r: (
            (r("method") == none_m)
            & missing_client(
                _member(_key(r, udp), with_toa),
                _member(_key(r, udp), with_pp),
                r("hs_done"),
                r("spoke"),
            )
        )
    )
    ips = vocab.ip_decode(c.at("origin_ip", rows))
    msgs = [
        f"no TOA or PROXY header, while other flows to {ip}:{port} carry one"
        for ip, port in zip(ips, c.at("origin_port", rows).tolist(), strict=True)
    ]
    out.add(rows, "client.missing", msgs, c.at("first_frame", rows), c.at("capture", rows))


def _self_addressed(c: Cols, vocab: Vocab, out: Extra) -> None:
    """``proxy.self_addressed``: a PROXY header whose source is the connection's own
    source, the proxy's health check."""
    pp = [vocab.code("ppv1"), vocab.code("ppv2")]
    cand = c.where(
        lambda r: (
            np.isin(r("method"), pp)
            & (r("client_port") != NULL)
            & (r("client_port") == r("egress_port"))
        )
    )
    if not cand.size:
        return
    c_ip, e_ip = c.at("client_ip", cand), c.at("egress_ip", cand)
    same = (c_ip >= 0) & (c_ip == e_ip)
    texts = (c_ip < NO_IP) | (e_ip < NO_IP)  # a text on either side: compare as addresses
    if texts.any():
        ct, et = vocab.ip_decode(c_ip[texts]), vocab.ip_decode(e_ip[texts])
        same[texts] = [_same_ip(a, b) for a, b in zip(ct, et, strict=True)]
    rows = cand[same]
    ips = vocab.ip_decode(c.at("client_ip", rows))
    msgs = [
        f"the header's source {ip}:{port} is this connection's own source: "
        "a check by the proxy, not a client"
        for ip, port in zip(ips, c.at("client_port", rows).tolist(), strict=True)
    ]
    out.add(rows, "proxy.self_addressed", msgs, *where_read(c, rows))


def _no_room(c: Cols, vocab: Vocab, out: Extra) -> None:
    """``toa.no_room``: a full handshake ACK without TOA, on a flow or a port that uses TOA."""
    nr = c.where(lambda r: r("no_room_cap") != NULL)
    if not nr.size:
        return
    udp = vocab.code("udp")
    toa_rows = c.where(lambda r: r("toa_carried"))
    toa_keys = distinct(_key(lambda name: c.at(name, toa_rows), udp))
    rows = nr[c.at("toa_carried", nr) | _member(_key(lambda name: c.at(name, nr), udp), toa_keys)]
    msg = "the handshake ACK has no TOA and its options leave fewer than 8 free bytes"
    out.add(
        rows,
        "toa.no_room",
        [msg] * rows.size,
        c.at("no_room_frame", rows),
        c.at("no_room_cap", rows),
    )


def _untrusted(c: Cols, vocab: Vocab, trusted: Sequence[Any], out: Extra) -> None:
    """``client.untrusted``: a client address carried from an egress outside ``--trusted``."""
    rows = c.where(lambda r: r("carries_client"))
    e = c.at("egress_ip", rows)
    uniq, inv = np.unique(e, return_inverse=True)
    bad_ip = np.asarray([not _in(trusted, ip) for ip in vocab.ip_decode(uniq)], dtype=bool)
    rows = rows[bad_ip[inv]] if uniq.size else rows
    e_txt = vocab.ip_decode(c.at("egress_ip", rows))
    c_txt = vocab.ip_decode(c.at("client_ip", rows))
    msgs = [
        f"{ip} is not in --trusted; its connection"
        + (f" claims client {who}" if who else " carries a client header")
        for ip, who in zip(e_txt, c_txt, strict=True)
    ]
    out.add(rows, "client.untrusted", msgs, *where_read(c, rows))
