"""Records with an egress ip, optional port and a time window, matched to an Analysis's
connections: the ``match``, ``candidates``, ``flow``, client and method of each.

The keys: a connection is keyed by its egress address and port for records that log a
port, by its address alone for those that do not. Addresses are compared in one spelling
(an IPv4-mapped ``::ffff:10.0.0.1`` is 10.0.0.1, IPv6 compressed), computed once per
distinct address.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from pcapip.resolve.columns import ADDED_COLUMNS, MATCHES
from pcapip.resolve.match import Connections, Found, match
from pcapip.resolve.times import distinct

if TYPE_CHECKING:
    import pandas as pd

# an Analysis (pcapip.report.analysis), named, not imported: Analysis.resolve calls us
Analysis = Any


def canonical(addresses: Any) -> np.ndarray:
    """Addresses in the capture's spelling (object array, None where there is none)."""
    codes, spelled = _spelled(addresses)
    return spelled[codes]  # code -1 picks the trailing None


def _spelled(addresses: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each address's code into its distinct values in the capture's spelling (those
    followed by None, which code -1 picks)."""
    codes, uniques = distinct(addresses)
    return codes, np.array([_spell(str(u)) for u in uniques] + [None], dtype=object)


_PLAIN4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")


def _spell(text: str) -> str | None:
    if _PLAIN4.fullmatch(text):  # already as the capture writes it
        return text
    text = text.strip().strip("[]")
    if not text or text == "-":
        return None
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _ns(col: pd.Series) -> np.ndarray:
    return col.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64").to_numpy()


def join(
    analysis: Analysis,
    ip: Any,
    port: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    tolerance_ns: int,
    origin_port: int | None = None,
    known: np.ndarray | None = None,
) -> dict[str, Any]:
    """The added columns (``columns.ADDED``) for records with egress ``ip``, ``port`` (-1:
    not logged) and window ``[lo, hi]`` (UTC ns); values as arrays in record order.
    ``known`` False: the record meets no connection (its time could not be read)."""
    import pandas as pd

    mask = _tcp_mask(analysis, origin_port)
    f = analysis.flows[mask]
    rec_codes, rec_spelled = _spelled(ip)  # a log repeats its addresses: each read once
    if known is not None:
        rec_codes = np.where(known, rec_codes, -1)
    f_ip = canonical(f["egress_ip"].astype(object).to_numpy())
    codes, _ = pd.factorize(pd.Series(np.concatenate([f_ip, rec_spelled]), dtype=object))
    f_code, r_code = codes[: len(f)], codes[len(f):][rec_codes]  # -1 picks None's -1
    f_port = f["egress_port"].fillna(-1).astype("int64").to_numpy()
    start, end, rows = _ns(f["start"]), _ns(f["end"]), np.flatnonzero(mask)
    port = np.asarray(port, dtype=np.int64)
    with_port = port >= 0
    # by address and port where the log has the port
    dense, _ = pd.factorize(np.concatenate([f_code * 65536 + f_port, r_code * 65536 + port]))
    by_pair = Connections(dense[: len(f)], start, end, rows)
    pair_key = np.where((r_code >= 0) & with_port, dense[len(f):], -1)
    found_pair = match(by_pair, pair_key, lo, hi, tolerance_ns)  # (keys -1: not asked)
    by_addr = Connections(f_code.astype(np.int64), start, end, rows)
    addr_key = np.where((r_code >= 0) & ~with_port, r_code, -1).astype(np.int64)
    found_addr = match(by_addr, addr_key, lo, hi, tolerance_ns)
    candidates = np.where(with_port, found_pair.candidates, found_addr.candidates)
    row = np.where(with_port, found_pair.row, found_addr.row)
    return _columns(analysis, Found(candidates, row), with_port)


def _tcp_mask(analysis: Analysis, origin_port: int | None) -> np.ndarray:
    """The flows a log record can come from: TCP, to ``origin_port`` if given."""
    f = analysis.flows
    keep = (f["transport"] == "tcp").to_numpy(dtype=bool)
    if origin_port is not None:
        keep = keep & (f["origin_port"] == origin_port).fillna(False).to_numpy(dtype=bool)
    return keep


def _columns(analysis: Analysis, found: Found, with_port: np.ndarray) -> dict[str, Any]:
    """The added columns, picked from the matched flows' rows (missing where none)."""
    import pandas as pd

    f = analysis.flows
    one = found.row >= 0
    codes = np.where(
        one,
        np.where(with_port, 0, 1),
        np.where(found.candidates > 1, 2, 3),
    )

    at = np.where(one, found.row, -1)

    def picked(name: str, dtype: str) -> Any:
        # a take from the flows' own column (-1: missing), no Python object per record
        return pd.array(f[name].array, dtype=dtype).take(at, allow_fill=True)

    method = np.full(len(one), -1, dtype=np.int64)
    method[one] = f["method"].cat.codes.to_numpy()[found.row[one]]
    out = {
        "client_ip": picked("client_ip", "string"),
        "client_port": picked("client_port", "UInt16"),
        "method": pd.Categorical.from_codes(method, dtype=f["method"].dtype),
        "flow": picked("flow", "Int64"),
        "match": pd.Categorical.from_codes(codes, categories=list(MATCHES)),
        "candidates": found.candidates.astype(np.int64),
    }
    assert tuple(out) == ADDED_COLUMNS
    return out
