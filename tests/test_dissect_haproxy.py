"""Headers written by a real HAProxy, parsed as they arrive, checked against what we know.

HAProxy runs on loopback only, in the foreground, and is stopped at the end.
Ground truth is independent of the parser: the client's own socket address
(HAProxy must report it as the source), the frontend address (the
destination), and the unique id HAProxy builds from a format we give it.
The origin side reads with small recv() calls and feeds parse_proxy as bytes
arrive, the way the flow stage sees a stream.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from tools import require_tool

from pcapip.dissect import ParseState, parse_proxy

pytestmark = pytest.mark.system


def free_port(family: int = socket.AF_INET) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        return s.getsockname()[1]


class Origin:
    """Accepts connections and records what each one received, fed in small pieces."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received: list[tuple[bytes, list[ParseState]]] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(3)
                data, states = b"", []
                with contextlib.suppress(OSError):
                    while b"hello" not in data:
                        chunk = conn.recv(7)  # small reads: the header arrives in pieces
                        if not chunk:
                            break
                        data += chunk
                        states.append(parse_proxy(data).state)
                    conn.sendall(b"ok")
                self.received.append((data, states))

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def haproxy(tmp_path: Path):
    exe = require_tool("haproxy")
    origin = Origin()
    ports = {"v1": free_port(), "v2": free_port(), "v1_6": free_port(socket.AF_INET6),
             "v2_6": free_port(socket.AF_INET6)}
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""
global
    maxconn 100
defaults
    mode tcp
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe_v1
    bind 127.0.0.1:{ports["v1"]}
    default_backend be_v1
frontend fe_v1_6
    bind [::1]:{ports["v1_6"]}
    default_backend be_v1
frontend fe_v2
    bind 127.0.0.1:{ports["v2"]}
    unique-id-format pcapip-%ci-%cp
    default_backend be_v2
frontend fe_v2_6
    bind [::1]:{ports["v2_6"]}
    unique-id-format pcapip-%ci-%cp
    default_backend be_v2
backend be_v1
    server origin 127.0.0.1:{origin.port} send-proxy
backend be_v2
    server origin 127.0.0.1:{origin.port} send-proxy-v2 proxy-v2-options crc32c,unique-id
""")
    proc = subprocess.Popen([exe, "-db", "-f", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", ports["v2"]), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail(f"haproxy did not start: {proc.stdout.read1(4000) if proc.stdout else ''}")
        yield ports, origin
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        origin.close()


def connect(host: str, port: int) -> tuple[str, int]:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as c:
        c.settimeout(5)
        c.connect((host, port))
        me = c.getsockname()[:2]
        c.sendall(b"hello")
        c.recv(2)
    return me


def received_for(origin: Origin, port: int) -> tuple[bytes, list[ParseState]]:
    """What the origin got on the connection relayed for client port ``port``."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for data, states in list(origin.received):
            p = parse_proxy(data)
            if p.header is not None and p.header.src_port == port:
                return data, states
        time.sleep(0.02)
    raise AssertionError(f"no connection for client port {port}: {origin.received}")


@pytest.mark.parametrize("which,host,version", [("v1", "127.0.0.1", 1), ("v1_6", "::1", 1),
                                               ("v2", "127.0.0.1", 2), ("v2_6", "::1", 2)])
def test_haproxy_headers(haproxy, which, host, version):
    ports, origin = haproxy
    me = connect(host, ports[which])
    data, states = received_for(origin, me[1])
    p = parse_proxy(data)
    assert p.state is ParseState.OK, p.experts
    h = p.header
    assert h.version == version and h.command == "PROXY"
    assert (h.src_addr, h.src_port) == (me[0], me[1])
    assert (h.dst_addr, h.dst_port) == (host, ports[which])
    assert data[p.length :] == b"hello"
    # while the header was incomplete, every piece was NEED_MORE (never NOT_PROXY/MALFORMED)
    complete = next(i for i, s in enumerate(states) if s is ParseState.OK)
    assert all(s is ParseState.NEED_MORE for s in states[:complete])
    if version == 1:
        assert h.family == ("TCP6" if ":" in host else "TCP4")
    else:
        assert h.family == ("INET6" if ":" in host else "INET") and h.transport == "STREAM"
        assert h.crc32c == "ok"
        uid = h.tlv("unique_id")
        assert uid is not None and uid.value == f"pcapip-{me[0]}-{me[1]}".encode()
