"""What a flow may take from a PROXY header or a TOA, and how header text is shown.

- A malformed or unfinished header gives no client: a conforming receiver
  drops the connection (the field tree still shows what was parsed).
- Addresses are reported as carried: an IPv4-mapped IPv6 address stays
  ``::ffff:a.b.c.d`` (nginx's ``$proxy_protocol_addr`` shows it so too).
- Non-printable bytes of header text are escaped the same way (``\\x00``,
  ``\\\\``) in every output.
- A v2 header cut short inside a whole UDP datagram is malformed, not
  incomplete: a datagram cannot continue.

Every capture runs with every packet through the per-packet rules and both backends.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from flowpaths import analysis
from gen import flow_pcaps as gen
from tools import require_tool

from pcapip.dissect import ParseState, parse_proxy
from pcapip.report.analysis import Analysis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


ORIG = (gen.ORIGIN, 8080)
GET = gen.HTTP_GET
OK = gen.HTTP_OK


def _analyze(path: Path) -> Analysis:
    """Every packet through the rules, checked against both backends at two batch sizes."""
    ref = None
    for batch in (1, 65536):
        r = analysis([path], "rules", batch_size=batch)
        for backend in ("compiled", "pure"):
            f = analysis([path], backend, batch_size=batch)
            pd.testing.assert_frame_equal(f.flows, r.flows)
            pd.testing.assert_frame_equal(f.findings, r.findings)
        ref = r
    assert ref is not None
    return ref


def _v2_inet6(src: str, dst: str, sport: int, dport: int, tlvs: bytes = b"") -> bytes:
    body = ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
    body += struct.pack("!HH", sport, dport) + tlvs
    return gen.V2_SIG + bytes([0x21, 0x21]) + struct.pack("!H", len(body)) + body


def _toa_dpvs6(ip: str, port: int) -> bytes:
    return bytes([254, 20]) + struct.pack("!H", port) + ipaddress.IPv6Address(ip).packed


TLV_TEXT = b"public\x00x\\y"  # a NUL and a backslash in an authority TLV

TCP_CASES = {
    # port: (what the egress sends, close after it), expected (method, status, client, family)
    44001: (b"PROXY TCP6 1:2:3::4 1234\r\n" + GET, ("ppv1", "malformed", None, "TCP6")),
    44002: (b"PROXY TCP4 1.2.3.4 5.6.7.8 100 200", ("ppv1", "incomplete", None, None)),
    # no CRLF: a bare LF ends the line (every field parsed, still malformed)
    44008: (b"PROXY TCP4 1.2.3.4 5.6.7.8 100 200\n" + GET, ("ppv1", "malformed", None, "TCP4")),
    44003: (
        b"PROXY TCP6 ::ffff:127.0.0.1 ::1 1234 80\r\n" + GET,
        ("ppv1", "ok", "::ffff:127.0.0.1", "TCP6"),
    ),
    44004: (
        _v2_inet6("::ffff:100.64.1.4", "2001:db8::20", 1404, 8080) + GET,
        ("ppv2", "ok", "::ffff:100.64.1.4", "INET6"),
    ),
    # addresses parse, then a TLV overruns the header: malformed, so no client
    44005: (
        gen.v2("100.64.1.5", gen.ORIGIN, 1405, 8080, tlvs=b"\x04\x00\x09ab") + GET,
        ("ppv2", "malformed", None, "INET"),
    ),
    44006: (
        gen.v2("100.64.1.6", gen.ORIGIN, 1406, 8080, tlvs=gen.tlv(0x02, TLV_TEXT)) + GET,
        ("ppv2", "ok", "100.64.1.6", "INET"),
    ),
}
ESCAPED = "public\\x00x\\\\y"


@pytest.fixture(scope="module")
def tcp_capture(tmp_path_factory) -> Path:
    cap = gen.Capture("trust.pcap", "")
    for port, (data, _) in TCP_CASES.items():
        c = gen.Conn(cap, (gen.PROXY1, port), ORIG).handshake()
        c.send(data)
        if port != 44002:
            c.reply(OK)
        c.close()
    # an IPv4-mapped client in an IPv6 TOA (dpvs-ipv6 layout) in the handshake ACK
    c = gen.Conn(cap, (gen.PROXY1, 44007), ORIG).handshake(
        ack_opts=_toa_dpvs6("::ffff:100.64.1.7", 1407)
    )
    c.send(GET).reply(OK).close()
    path = tmp_path_factory.mktemp("trust") / cap.name
    gen.write_pcap(path, cap.frames)
    return path


@pytest.fixture(scope="module")
def tcp_result(tcp_capture) -> Analysis:
    return _analyze(tcp_capture)


def _by_port(a: Analysis) -> dict[int, dict]:
    return {int(r["egress_port"]): r for r in a.flows.to_dict("records")}


def _none(v) -> object:
    return None if v is None or (isinstance(v, float) and v != v) or v is pd.NA else v


def test_malformed_or_unfinished_header_gives_no_client(tcp_result):
    rows = _by_port(tcp_result)
    for port in (44001, 44002, 44005, 44008):
        _, (method, status, client, family) = TCP_CASES[port]
        r = rows[port]
        assert (r["method"], r["status"], _none(r["pp_family"])) == (method, status, family), port
        assert _none(r["client_ip"]) is None and _none(r["client_port"]) is None, port
        assert _none(r["proxy_ip"]) is None and _none(r["proxy_port"]) is None, port


def test_malformed_header_still_shows_what_was_parsed():
    p = parse_proxy(TCP_CASES[44001][0])
    assert p.state is ParseState.MALFORMED
    assert p.tree.find("proxy.src.ipv6") is not None  # in the tree, not in the client columns


def test_by_client_counts_no_client_of_a_malformed_header(tcp_capture):
    out = _cli("analyze", "--by", "client", "--format", "csv", str(tcp_capture))
    assert out.returncode == 0, out.stderr
    clients = [r["client_ip"] for r in csv.DictReader(io.StringIO(out.stdout.decode()))]
    assert "1:2:3::4" not in clients and "1.2.3.4" not in clients
    assert "::ffff:127.0.0.1" in clients


def test_ipv4_mapped_addresses_are_reported_as_carried(tcp_result):
    rows = _by_port(tcp_result)
    for port in (44003, 44004):
        _, (method, status, client, family) = TCP_CASES[port]
        r = rows[port]
        assert (r["method"], r["status"], r["client_ip"], r["pp_family"]) == (
            method, status, client, family,
        ), port
    r = rows[44007]
    assert (r["method"], r["client_ip"], r["client_port"]) == ("toa", "::ffff:100.64.1.7", 1407)


def test_nul_and_backslash_in_a_tlv_are_escaped_in_every_output(tcp_capture, tcp_result):
    want = f"authority={ESCAPED}"
    assert _by_port(tcp_result)[44006]["tlvs"] == want
    raw = TLV_TEXT.decode()
    for fmt in ("csv", "json", "table"):
        out = _cli("analyze", "--format", fmt, "--max-rows", "0", str(tcp_capture))
        text = out.stdout.decode()
        assert raw not in text and "\x00" not in text, fmt
        if fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(text)))
            assert want in [r["tlvs"] for r in rows]
        elif fmt == "json":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            assert want in [r.get("tlvs") for r in rows]
        else:
            assert ESCAPED in text
    flow = int(tcp_result.flows.loc[tcp_result.flows["egress_port"] == 44006, "flow"].iloc[0])
    shown = _cli("show", "--flow", str(flow), str(tcp_capture)).stdout.decode()
    assert f"Authority: {ESCAPED}" in shown and "\x00" not in shown


def test_parquet_gets_the_same_escaped_text(tcp_capture, tmp_path):
    out = tmp_path / "f.parquet"
    res = _cli("analyze", "-o", str(out), str(tcp_capture))
    assert res.returncode == 0, res.stderr
    assert f"authority={ESCAPED}" in list(pd.read_parquet(out)["tlvs"])


def test_v1_unknown_data_is_escaped_in_the_tree():
    p = parse_proxy(b"PROXY UNKNOWN a\x01b\\c\r\n")
    node = p.tree.find("proxy.v1.unknown")
    assert node is not None and "a\\x01b\\\\c" in node.label and "\x01" not in node.label


# --- UDP -------------------------------------------------------------------------------------


def test_v2_cut_short_inside_a_whole_datagram_is_malformed(tmp_path):
    cap = gen.Capture("udp-trust.pcap", "")
    head = gen.v2("100.64.2.1", gen.ORIGIN, 2001, 5353, dgram=True)
    # a whole datagram holding only the first 22 of the header's 28 bytes
    cap.add(gen.udp_datagram(gen.PROXY1, gen.ORIGIN, 45001, 5353, head[:22]))
    # the same header complete, but the snap length cuts the datagram inside it
    cap.add(gen.udp_datagram(gen.PROXY1, gen.ORIGIN, 45002, 5353, head + b"query"), snap=14 + 20 + 8 + 22)
    path = tmp_path / cap.name
    gen.write_pcap(path, cap.frames)
    a = _analyze(path)
    rows = _by_port(a)
    for port in (45001, 45002):
        assert rows[port]["status"] == "malformed" and _none(rows[port]["client_ip"]) is None
    f = a.findings
    whole = f[f["flow"] == rows[45001]["flow"]]
    assert "proxy.v2.malformed" in set(whole["code"]) and "proxy.incomplete" not in set(whole["code"])
    msg = whole.loc[whole["code"] == "proxy.v2.malformed", "message"].iloc[0]
    assert "22 bytes" in msg and "datagram cannot continue" in msg
    cut = f[f["flow"] == rows[45002]["flow"]]
    assert "proxy.incomplete" in set(cut["code"]) and "capture.truncated" in set(cut["code"])


# --- against real nginx ----------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, COLUMNS="300")
    return subprocess.run(
        [sys.executable, "-m", "pcapip", *args], capture_output=True, cwd=ROOT, env=env,
        timeout=120,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    exe = require_tool("nginx")
    d = tmp_path_factory.mktemp("nginx")
    port = _free_port()
    temps = " ".join(
        f"{k}_temp_path {d / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (d / "nginx.conf").write_text(
        f"daemon off; master_process off; user root; pid {d / 'nginx.pid'};\n"
        f"error_log {d / 'error.log'} info;\n"
        "events { worker_connections 16; }\n"
        f"http {{ access_log off; {temps}\n"
        f"  server {{ listen 127.0.0.1:{port} proxy_protocol;\n"
        '    location / { return 200 "pp=$proxy_protocol_addr:$proxy_protocol_port\\n"; } } }\n'
    )
    proc = subprocess.Popen([exe, "-p", str(d), "-c", str(d / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _ask(port: int, header: bytes) -> str | None:
    """nginx's $proxy_protocol_addr:port for ``header``, None when it drops the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(header + b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    for line in data.decode("latin-1").splitlines():
        if line.startswith("pp="):
            return line[3:]
    return None


NGINX_CASES = [
    b"PROXY TCP6 ::ffff:127.0.0.1 ::1 1234 80\r\n",
    b"PROXY TCP6 2001:db8::1 ::1 1234 80\r\n",
    b"PROXY TCP4 192.0.2.1 192.0.2.2 1234 80\r\n",
    _v2_inet6("::ffff:100.64.1.4", "2001:db8::20", 1404, 8080),
    _v2_inet6("2001:db8::4", "2001:db8::20", 1404, 8080),
    b"PROXY TCP6 1:2:3::4 1234\r\n",  # missing fields: nginx drops it
]


@pytest.mark.system
@pytest.mark.parametrize("header", NGINX_CASES, ids=lambda h: h[:32].hex() if h[:1] == b"\r" else h[:32].decode().strip())
def test_client_text_matches_nginx(nginx, header):
    theirs = _ask(nginx, header)
    p = parse_proxy(header)
    if p.state is not ParseState.OK:
        assert theirs is None
        return
    h = p.header
    assert theirs == f"{h.src_addr}:{h.src_port}"
