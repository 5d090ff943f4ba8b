"""The TUI/CLI filter language: any text parses or raises FilterError (one line naming what
is wrong), and what parses evaluates on a flows frame to one boolean per flow."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["pcapip", "common"]):
    from common import PCAPS, Broken

    import pcapip
    from pcapip.report import filters  # noqa: F401
    from pcapip.report.filters import FilterError, evaluate, parse

FLOWS = pcapip.analyze(str(PCAPS / "flow-proxy-misc.pcap")).flows


def test_one(data: bytes) -> None:
    text = data.decode("utf-8", "replace")[:500]
    try:
        parse(text)
        mask = evaluate(text, FLOWS)
    except FilterError as exc:
        if "\n" in str(exc):
            raise Broken("a filter error of more than one line") from None
        return
    if len(mask) != len(FLOWS) or mask.dtype != bool:
        raise Broken("a filter that does not give one boolean per flow")


def seeds():
    for text in ("method==ppv2", "client_ip in 10.0.0.0/8", "finding:origin.rejected",
                 "has:client_ip and not status==ok", "(egress_port>1024 or tunnel~vxlan)",
                 "packets>=3 and origin_port==80", "tlvs~ssl"):
        yield text.encode()


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
