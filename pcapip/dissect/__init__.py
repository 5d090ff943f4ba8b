"""Dissectors for what an L4 proxy tells the origin: TOA TCP options and PROXY headers.

They work on bytes only (no flows, no reports), return Wireshark-style field
trees, and never raise on any input: problems are expert items with stable
codes (``pcapip.dissect.codes.CODES``).
"""

from pcapip.dissect.codes import CODES, CodeInfo, expert
from pcapip.dissect.fields import Expert, Field, Severity
from pcapip.dissect.frame import dissect_frame
from pcapip.dissect.hexdump import hexdump
from pcapip.dissect.proxy import parse_proxy
from pcapip.dissect.proxy_model import ParseState, ProxyHeader, ProxyParse, ProxyTlv
from pcapip.dissect.tcp_options import ToaOption, ToaResult, dissect_tcp_options
from pcapip.dissect.toa_registry import (
    DEFAULT_KINDS,
    DEFAULT_REGISTRY,
    KNOWN_VARIANTS,
    ToaRegistry,
    ToaVariant,
)

__all__ = [
    "CODES",
    "CodeInfo",
    "DEFAULT_KINDS",
    "DEFAULT_REGISTRY",
    "KNOWN_VARIANTS",
    "Expert",
    "Field",
    "ParseState",
    "ProxyHeader",
    "ProxyParse",
    "ProxyTlv",
    "Severity",
    "ToaOption",
    "ToaRegistry",
    "ToaResult",
    "ToaVariant",
    "dissect_frame",
    "dissect_tcp_options",
    "expert",
    "hexdump",
    "parse_proxy",
]
