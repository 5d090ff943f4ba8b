"""Real peers for system tests: HAProxy and nginx in private network namespaces.

Unit tests of the dissectors compare pcapip against byte strings we wrote
ourselves, so they cannot catch a misreading of the protocol that we share
with our own fixtures.  This module produces captures whose ground truth comes
from elsewhere: HAProxy writes the PROXY headers and logs which egress
address (the source the origin sees) carried which real client, and nginx
parses the headers on the far side.  Tests compare pcapip (or tshark) with
those logs, never with pcapip's own output.

Everything runs inside three network namespaces created per topology::

    client (10.77.1.2, fd77:1::2)
      └─ veth ─ proxy (10.77.1.1 / 10.77.2.1, fd77:1::1 / fd77:2::1; HAProxy)
                  └─ veth ─ origin (10.77.2.2, fd77:2::2; nginx, capture point)

The addresses exist only inside those namespaces and there are no routes out
of them, so no packet can leave the machine.  Namespace names carry the pid
and a random token, so parallel runs never collide and namespaces left by a
killed run can be recognised and removed (:func:`cleanup_stale`).

The usual entry point is :func:`run_scenario`; the pieces it is made of
(:class:`Topology`, :func:`start_origins`, :func:`start_haproxy`,
:func:`drive_clients`, :meth:`Topology.capture`) are public for tests that
need a different order of events.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, NamedTuple

NS_PREFIX = "pcapip-peer-"
NODES = ("client", "proxy", "origin")
Node = Literal["client", "proxy", "origin"]
Family = Literal[4, 6]

#: Interface names inside the namespaces.  They only need to be unique per
#: namespace, so fixed names are safe even with many topologies at once.
CLIENT_IF = "cl0"
PROXY_FRONT_IF = "pf0"
PROXY_BACK_IF = "pb0"
ORIGIN_IF = "or0"

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

#: Tools the harness runs.
REQUIRED_TOOLS = ("ip", "ss", "haproxy", "nginx", "tcpdump")


@dataclass(frozen=True)
class Addresses:
    """The four interface addresses of one address family."""

    client: str
    proxy_front: str
    proxy_back: str
    origin: str
    prefix: int


IPV4 = Addresses("10.77.1.2", "10.77.1.1", "10.77.2.1", "10.77.2.2", 24)
IPV6 = Addresses("fd77:1::2", "fd77:1::1", "fd77:2::1", "fd77:2::2", 64)


def addresses(family: Family) -> Addresses:
    """Addresses of ``family`` (4 or 6); every topology carries both."""
    if family == 4:
        return IPV4
    if family == 6:
        return IPV6
    raise ValueError(f"address family must be 4 or 6, not {family!r}")


def hostport(host: str, port: int) -> str:
    """``host:port`` with IPv6 hosts in brackets, as HAProxy and nginx want them."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class PeerError(RuntimeError):
    """A peer (HAProxy, nginx, tcpdump, ip) failed; the message quotes its log."""


def require_peers(*extra_tools: str) -> None:
    """Skip (or, with env ``CI`` set, fail) unless this machine can run peers.

    Needs root for ``ip netns`` and the tools in :data:`REQUIRED_TOOLS` plus
    ``extra_tools`` (e.g. ``"tshark"``, ``"dumpcap"``).
    """
    import pytest
    from tools import require_tool

    for tool in (*REQUIRED_TOOLS, *extra_tools):
        require_tool(tool)
    if os.geteuid() != 0:
        message = "network namespaces need root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if not Path(NGINX_STREAM_MODULE).exists():
        message = f"nginx stream module missing: {NGINX_STREAM_MODULE}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


# --------------------------------------------------------------------------
# Namespaces and processes


def _run(argv: Sequence[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise PeerError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def list_namespaces() -> list[str]:
    """Names of all network namespaces (``ip netns list``, ids stripped)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def _namespace_pids(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10)
    return [int(tok) for tok in out.stdout.split() if tok.isdigit()]


def _kill_namespace(ns: str) -> None:
    """Kill what still runs in ``ns`` (only processes this harness started can
    be there) and delete it: a namespace whose processes outlive it keeps its
    interfaces, and tcpdump or nginx would linger unnoticed."""
    for _ in range(3):
        pids = _namespace_pids(ns)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale() -> list[str]:
    """Delete namespaces of this harness whose creating process is gone.

    A run killed by SIGKILL (or a CI timeout) cannot clean up; its namespaces
    carry the creator's pid in the name, so the next run removes them.
    Returns the names removed.
    """
    removed = []
    for ns in list_namespaces():
        if not ns.startswith(NS_PREFIX):
            continue
        pid_text = ns[len(NS_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            _kill_namespace(ns)
            removed.append(ns)
    return removed


class Topology:
    """Three namespaces joined by two veth pairs, dual-stack; a context manager.

    Leaving the ``with`` block (normally or by an exception) stops every
    process started through :meth:`spawn` and deletes the namespaces.
    """

    def __init__(self, workdir: Path | None = None) -> None:
        self.token = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.namespaces: dict[str, str] = {n: f"{NS_PREFIX}{self.token}-{n}" for n in NODES}
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="pcapip-peers-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._procs: list[subprocess.Popen[bytes]] = []
        self.pids: list[int] = []
        self._closed = False

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> Topology:
        cleanup_stale()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        ns = self.namespaces
        for name in ns.values():
            _run(["ip", "netns", "add", name])
        # Created directly inside the namespaces: nothing appears, even briefly,
        # in the namespace the tests run in.
        for (a_node, a_if), (b_node, b_if) in (
            (("client", CLIENT_IF), ("proxy", PROXY_FRONT_IF)),
            (("proxy", PROXY_BACK_IF), ("origin", ORIGIN_IF)),
        ):
            _run(
                ["ip", "link", "add", a_if, "netns", ns[a_node], "type", "veth"]
                + ["peer", "name", b_if, "netns", ns[b_node]]
            )
        plan = [
            ("client", CLIENT_IF, "client"),
            ("proxy", PROXY_FRONT_IF, "proxy_front"),
            ("proxy", PROXY_BACK_IF, "proxy_back"),
            ("origin", ORIGIN_IF, "origin"),
        ]
        for node, ifname, role in plan:
            for fam in (IPV4, IPV6):
                addr = f"{getattr(fam, role)}/{fam.prefix}"
                extra = ["nodad"] if fam is IPV6 else []
                _run(["ip", "-n", ns[node], "addr", "add", addr, "dev", ifname, *extra])
            _run(["ip", "-n", ns[node], "link", "set", ifname, "up"])
        for node in NODES:
            _run(["ip", "-n", ns[node], "link", "set", "lo", "up"])

    def close(self) -> None:
        """Stop all spawned processes, delete the namespaces; idempotent."""
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self._procs):
            stop_process(proc)
        for name in self.namespaces.values():
            _kill_namespace(name)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- running things ----------------------------------------------------

    def command(self, node: Node, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run inside ``node``'s namespace."""
        return ["ip", "netns", "exec", self.namespaces[node], *argv]

    def run(
        self, node: Node, argv: Sequence[str], *, timeout: float = 10.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in ``node`` to completion (killed after ``timeout``)."""
        return subprocess.run(
            self.command(node, argv), capture_output=True, text=True, timeout=timeout, input=input
        )

    def spawn(self, node: Node, argv: Sequence[str], *, log: Path) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``node`` with stdout+stderr to ``log``; stopped on close.

        Output goes to a file rather than a pipe so a chatty peer can never
        block on a full pipe nobody reads.
        """
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                self.command(node, argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._procs.append(proc)
        self.pids.append(proc.pid)
        return proc

    @contextlib.contextmanager
    def capture(
        self,
        path: Path,
        *,
        node: Node = "origin",
        iface: str | None = None,
        tool: Literal["tcpdump", "dumpcap"] = "tcpdump",
        timeout: float = 10.0,
    ) -> Iterator[Path]:
        """Capture on ``node``'s interface into ``path`` for the ``with`` block.

        Returns only once the capturer reports it is listening, so no packet
        sent inside the block is missed; on exit it is stopped with SIGINT so
        the file is flushed and complete.  ``tcpdump`` writes pcap,
        ``dumpcap`` pcapng.
        """
        iface = iface or {"client": CLIENT_IF, "proxy": PROXY_BACK_IF, "origin": ORIGIN_IF}[node]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        log = self.workdir / f"{tool}-{node}-{iface}-{secrets.token_hex(2)}.log"
        if tool == "tcpdump":
            # -Z root: Debian's tcpdump otherwise drops to user tcpdump and
            # cannot write into root-owned temporary directories.
            # -s/-B: with immediate mode and the default 256 KiB snap length, the default
            # 2 MiB buffer holds only a few packets, and the kernel drops the rest.
            argv = ["tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-Z", "root"]
            argv += ["-s", "1600", "-B", "16384"]
            argv += ["-w", str(path)]
            ready = "listening on"
            settle = 0.1
        elif tool == "dumpcap":
            argv = ["dumpcap", "-i", iface, "-s", "1600", "-B", "16", "-w", str(path)]
            ready = "Capturing on"
            # dumpcap has no immediate mode: libpcap hands packets over in
            # blocks that are retired only after its 250 ms read timeout, and
            # a block still in the kernel at SIGINT is lost.
            settle = 0.8
        else:
            raise ValueError(f"unknown capture tool {tool!r}")
        proc = self.spawn(node, argv, log=log)
        try:
            _wait_for(lambda: ready in _read(log), timeout, f"{tool} to listen", proc, log)
            yield path
        finally:
            # Let the last packets reach the capturer before stopping it.
            time.sleep(settle)
            stop_process(proc, sig=signal.SIGINT, grace=timeout)
        if proc.returncode not in (0, -signal.SIGINT):
            raise PeerError(f"{tool} exited with {proc.returncode}: {_read(log)[-2000:]}")
        dropped = _kernel_drops(_read(log))
        if dropped:
            # A capture with holes would make every ground-truth comparison flaky.
            raise PeerError(f"{tool} lost {dropped} packets in the kernel: {_read(log)[-500:]}")
        # dumpcap creates its file 0600; captures are meant to be read by anyone.
        if path.exists():
            path.chmod(0o644)


def _kernel_drops(log: str) -> int:
    """Packets the capturer reported as dropped by the kernel (tcpdump or dumpcap wording)."""
    m = re.search(r"(\d+) packets? dropped by kernel", log)
    if m:
        return int(m.group(1))
    m = re.search(r"Packets received/dropped on interface '[^']*': \d+/(\d+)", log)
    return int(m.group(1)) if m else 0


def stop_process(
    proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, grace: float = 3.0
) -> None:
    """Signal ``proc``'s process group, escalate to SIGKILL after ``grace`` s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _wait_for(
    cond: Callable[[], bool],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None,
    log: Path | None,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            tail = _read(log)[-2000:] if log else ""
            raise PeerError(f"gave up waiting for {what}: process exited {proc.returncode}: {tail}")
        if time.monotonic() > deadline:
            tail = _read(log)[-2000:] if log else ""
            raise PeerError(f"gave up waiting for {what} after {timeout:.0f}s: {tail}")
        time.sleep(0.02)


# --------------------------------------------------------------------------
# Routes: which header HAProxy sends to which origin


class Header(enum.StrEnum):
    """What HAProxy puts in front of the stream it opens to the origin."""

    NONE = "none"
    V1 = "v1"
    V2 = "v2"
    V2_CRC_UID = "v2-crc-uid"  # v2 with CRC32C and UNIQUE_ID TLVs


class Origin(enum.StrEnum):
    """Which nginx server in the origin namespace a route ends at."""

    HTTP_PP = "http-pp"  # http, ``listen ... proxy_protocol``: parses the header
    HTTP = "http"  # http without proxy_protocol: a header makes it answer 400
    STREAM_PP = "stream-pp"  # stream, proxy_protocol, answers "ok ..." without a request


ORIGIN_PORTS: dict[Origin, int] = {Origin.HTTP_PP: 9001, Origin.HTTP: 9080, Origin.STREAM_PP: 9101}


@dataclass(frozen=True)
class Route:
    """One HAProxy frontend (``fe_<name>`` on ``port``) and its backend.

    ``health_check`` makes HAProxy check the server every 200 ms with the
    route's header.  HAProxy 2.6 sends v2 checks as LOCAL (no addresses) but
    v1 checks as an ordinary ``PROXY TCP4|TCP6`` line naming the check
    connection itself (source = HAProxy's egress address and port), so a v1
    check looks like a client that is its own proxy.  Checks are not logged.
    """

    name: str
    port: int
    header: Header
    origin: Origin
    health_check: bool = False

    @property
    def frontend(self) -> str:
        return f"fe_{self.name}"

    @property
    def backend(self) -> str:
        return f"be_{self.name}"

    @property
    def origin_port(self) -> int:
        return ORIGIN_PORTS[self.origin]

    @property
    def request(self) -> bytes:
        """What a client sends: an HTTP/1.0 GET, or nothing for the stream origin
        (it answers at once; unread request bytes would make it reset)."""
        if self.origin is Origin.STREAM_PP:
            return b""
        return f"GET /{self.name} HTTP/1.0\r\nHost: origin\r\n\r\n".encode()


ROUTES: dict[str, Route] = {
    r.name: r
    for r in (
        Route("v1", 8001, Header.V1, Origin.HTTP_PP),
        Route("v2", 8002, Header.V2, Origin.HTTP_PP),
        Route("v2-crc-uid", 8003, Header.V2_CRC_UID, Origin.HTTP_PP),
        Route("noheader", 8004, Header.NONE, Origin.HTTP),
        Route("rejected", 8005, Header.V1, Origin.HTTP),
        Route("rejected-v2", 8006, Header.V2, Origin.HTTP),
        Route("stream-v2", 8007, Header.V2, Origin.STREAM_PP),
        Route("check-v1", 8008, Header.V1, Origin.STREAM_PP, health_check=True),
        Route("check-v2", 8009, Header.V2, Origin.STREAM_PP, health_check=True),
    )
}


def route(r: Route | str) -> Route:
    """A :class:`Route` given itself or its name in :data:`ROUTES`."""
    return r if isinstance(r, Route) else ROUTES[r]


# --------------------------------------------------------------------------
# nginx origins

ORIGIN_LOG_FORMAT = (
    "$server_port\t$remote_addr\t$remote_port\t$proxy_protocol_addr\t$proxy_protocol_port\t$status"
)


@dataclass(frozen=True)
class OriginRecord:
    """One connection as nginx saw it; ``proxy_*`` empty when no header was parsed."""

    kind: str  # "http" or "stream"
    server_port: int
    remote_ip: str
    remote_port: int
    proxy_ip: str
    proxy_port: int | None
    status: int


def parse_origin_line(line: str) -> OriginRecord | None:
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 7:
        return None
    kind, sport, rip, rport, pip, pport, status = parts
    return OriginRecord(
        kind=kind,
        server_port=int(sport),
        remote_ip=rip,
        remote_port=int(rport),
        proxy_ip=pip,
        proxy_port=int(pport) if pport.isdigit() else None,
        status=int(status) if status.isdigit() else 0,
    )


@dataclass
class Origins:
    """The running nginx; :meth:`lines` / :meth:`records` read its access logs."""

    proc: subprocess.Popen[bytes]
    http_log: Path
    stream_log: Path
    error_log: Path

    def lines(self) -> list[str]:
        return _read(self.http_log).splitlines() + _read(self.stream_log).splitlines()

    def records(self) -> list[OriginRecord]:
        return [r for r in map(parse_origin_line, self.lines()) if r is not None]


def nginx_config(root: Path, family: Family) -> str:
    origin = addresses(family).origin
    ports = ORIGIN_PORTS
    fmt = ORIGIN_LOG_FORMAT
    temp = "\n".join(
        f"    {kind}_temp_path {root}/tmp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
load_module {NGINX_STREAM_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format origin "http\\t{fmt}";
    access_log {root}/http.log origin;
{temp}
    server {{
        listen {hostport(origin, ports[Origin.HTTP_PP])} proxy_protocol;
        return 200 "pp $proxy_protocol_addr $proxy_protocol_port\\n";
    }}
    server {{
        listen {hostport(origin, ports[Origin.HTTP])};
        return 200 "plain $remote_addr $remote_port\\n";
    }}
}}
stream {{
    log_format origin "stream\\t{fmt}";
    access_log {root}/stream.log origin;
    server {{
        listen {hostport(origin, ports[Origin.STREAM_PP])} proxy_protocol;
        return "ok $proxy_protocol_addr $proxy_protocol_port\\n";
    }}
}}
"""


def start_origins(topo: Topology, *, family: Family = 4, timeout: float = 10.0) -> Origins:
    """Start nginx in the origin namespace, listening on ``family``'s origin address."""
    root = topo.workdir / f"nginx-{family}"
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(nginx_config(root, family))
    argv = ["nginx", "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")]
    proc = topo.spawn("origin", argv, log=root / "console.log")
    origins = Origins(proc, root / "http.log", root / "stream.log", root / "error.log")
    _wait_for_listen(topo, "origin", list(ORIGIN_PORTS.values()), timeout, proc, root / "error.log")
    return origins


def _wait_for_listen(
    topo: Topology,
    node: Node,
    ports: list[int],
    timeout: float,
    proc: subprocess.Popen[bytes],
    log: Path,
) -> None:
    """Wait until ``node`` has TCP listeners on all ``ports`` (``ss -ltnH``)."""
    want = set(ports)

    def listening() -> bool:
        out = topo.run(node, ["ss", "-ltnH"], timeout=5).stdout
        have = set()
        for line in out.splitlines():
            cols = line.split()
            if len(cols) >= 4:
                port = cols[3].rsplit(":", 1)[-1]
                if port.isdigit():
                    have.add(int(port))
        return want <= have

    _wait_for(listening, timeout, f"listeners on {sorted(want)} in {node}", proc, log)


# --------------------------------------------------------------------------
# HAProxy

#: Tab-separated so that empty or odd values cannot shift columns.
HAPROXY_LOG_FORMAT = "pcapip %f %b %s %ci %cp %fi %fp %bi %bp %si %sp %ts %U %B %ID".replace(
    " ", "\\t"
)
UNIQUE_ID_FORMAT = "%{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid"


@dataclass(frozen=True)
class HAProxyRecord:
    """One client connection as HAProxy logged it.

    ``egress_ip:egress_port`` (``%bi:%bp``) is the source address of the
    connection HAProxy opened to the server, i.e. what a capture at the
    origin shows; ``client_ip:client_port`` (``%ci:%cp``) is who really
    connected.  That pair is the ground truth an analyzer must reproduce.
    """

    frontend: str
    backend: str
    server: str
    client_ip: str
    client_port: int
    frontend_ip: str
    frontend_port: int
    egress_ip: str
    egress_port: int
    server_ip: str
    server_port: int
    termination: str
    bytes_up: int
    bytes_down: int
    unique_id: str | None

    @property
    def route(self) -> str:
        return self.frontend.removeprefix("fe_")

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def parse_haproxy_line(line: str) -> HAProxyRecord | None:
    """A record from one log line, or None for lines not in our log-format."""
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) != 16 or parts[0] != "pcapip":
        return None
    (_, fe, be, srv, ci, cp, fi, fp, bi, bp, si, sp, ts, up, down, uid) = parts

    def num(text: str) -> int:
        return int(text) if text.lstrip("-").isdigit() else -1

    return HAProxyRecord(
        frontend=fe,
        backend=be,
        server=srv,
        client_ip=ci,
        client_port=num(cp),
        frontend_ip=fi,
        frontend_port=num(fp),
        egress_ip=bi,
        egress_port=num(bp),
        server_ip=si,
        server_port=num(sp),
        termination=ts,
        bytes_up=num(up),
        bytes_down=num(down),
        unique_id=None if uid in ("", "-") else uid,
    )


@dataclass
class HAProxy:
    """The running HAProxy; :meth:`records` parses its log so far."""

    proc: subprocess.Popen[bytes]
    log: Path
    config: Path
    routes: tuple[Route, ...]

    def records(self) -> list[HAProxyRecord]:
        return [r for r in map(parse_haproxy_line, _read(self.log).splitlines()) if r is not None]

    def wait_records(self, count: int, *, timeout: float = 10.0) -> list[HAProxyRecord]:
        """Wait until at least ``count`` connections are logged.

        HAProxy logs a TCP connection when both sides have closed, which can
        be a moment after the client has its answer.
        """
        _wait_for(
            lambda: len(self.records()) >= count,
            timeout,
            f"{count} HAProxy log records",
            self.proc,
            self.log,
        )
        return self.records()

    def stop(self, *, grace: float = 3.0) -> None:
        """Soft stop (SIGUSR1): listeners close, live connections finish, checks stop."""
        stop_process(self.proc, sig=signal.SIGUSR1, grace=grace)


#: Egress ports per route when :func:`haproxy_config` is given a ``source_port_base``.
SOURCE_PORTS_PER_ROUTE = 100


def haproxy_config(
    routes: Sequence[Route], origin_family: Family, *, source_port_base: int | None = None
) -> str:
    """HAProxy's configuration for ``routes``.

    ``source_port_base`` pins the egress ports: route ``i`` connects from ports
    ``base + 100*i`` upwards, handed out in order, so two proxies driven alike
    open byte-identical connections (two tenants of one tunnel sharing inner
    addresses must then be told apart by the tunnel alone).
    """
    front4, front6 = IPV4.proxy_front, IPV6.proxy_front
    origin = addresses(origin_family).origin
    out = [
        "global",
        "    log stdout format raw local0",
        # one thread: with several, HAProxy drops a log line when two threads collide on
        # stdout's lock (fd_write_frag_line gives up after 200 tries), and the logs are
        # the tests' ground truth; one thread serves these rates many times over
        "    nbthread 1",
        "    maxconn 256",
        "defaults",
        "    mode tcp",
        "    log global",
        f'    log-format "{HAPROXY_LOG_FORMAT}"',
        "    timeout connect 3s",
        "    timeout client 10s",
        "    timeout server 10s",
        "    timeout check 2s",
    ]
    for i, r in enumerate(routes):
        out += [
            f"frontend {r.frontend}",
            f"    bind {hostport(front4, r.port)}",
            f"    bind {hostport(front6, r.port)}",
            f"    default_backend {r.backend}",
        ]
        if r.header is Header.V2_CRC_UID:
            out.append(f'    unique-id-format "{UNIQUE_ID_FORMAT}"')
        server = f"    server origin {hostport(origin, r.origin_port)}"
        if r.header is Header.V1:
            server += " send-proxy"
        elif r.header is Header.V2:
            server += " send-proxy-v2"
        elif r.header is Header.V2_CRC_UID:
            server += " send-proxy-v2 proxy-v2-options crc32c,unique-id"
        if r.health_check:
            server += " check check-send-proxy inter 200ms fall 3 rise 1"
        if source_port_base is not None:
            low = source_port_base + SOURCE_PORTS_PER_ROUTE * i
            egress = addresses(origin_family).proxy_back
            server += f" source {hostport(egress, low)}-{low + SOURCE_PORTS_PER_ROUTE - 1}"
        out += [f"backend {r.backend}", server]
    return "\n".join(out) + "\n"


def start_haproxy(
    topo: Topology,
    routes: Sequence[Route | str],
    *,
    origin_family: Family = 4,
    timeout: float = 10.0,
    source_port_base: int | None = None,
) -> HAProxy:
    """Start HAProxy (foreground, ``-db``) in the proxy namespace serving ``routes``.

    Frontends listen on both the IPv4 and the IPv6 front address; servers
    are reached over ``origin_family`` (from pinned egress ports with
    ``source_port_base``, see :func:`haproxy_config`).  Returns once all
    frontends listen.
    """
    rs = tuple(route(r) for r in routes)
    root = topo.workdir / f"haproxy-{secrets.token_hex(2)}"
    root.mkdir(parents=True)
    cfg = root / "haproxy.cfg"
    cfg.write_text(haproxy_config(rs, origin_family, source_port_base=source_port_base))
    check = topo.run("proxy", ["haproxy", "-c", "-f", str(cfg)], timeout=10)
    if check.returncode != 0:
        raise PeerError(f"haproxy rejected {cfg}: {check.stdout}{check.stderr}")
    log = root / "haproxy.log"
    proc = topo.spawn("proxy", ["haproxy", "-db", "-f", str(cfg)], log=log)
    _wait_for_listen(topo, "proxy", [r.port for r in rs], timeout, proc, log)
    return HAProxy(proc, log, cfg, rs)


# --------------------------------------------------------------------------
# Clients

_CLIENT_SCRIPT = r"""
import json, socket, sys, time
spec = json.loads(sys.argv[1])
out = []
for i in range(spec["count"]):
    rec = {"local_ip": None, "local_port": None, "reply": "", "error": None}
    try:
        s = socket.create_connection((spec["host"], spec["port"]), timeout=spec["timeout"])
        with s:
            s.settimeout(spec["timeout"])
            rec["local_ip"], rec["local_port"] = s.getsockname()[:2]
            if spec["request"]:
                s.sendall(spec["request"].encode("latin-1"))
            data = b""
            while len(data) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            rec["reply"] = data.decode("latin-1")
    except OSError as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
    out.append(rec)
    if spec["pause"]:
        time.sleep(spec["pause"])
print(json.dumps(out))
"""


@dataclass(frozen=True)
class ClientResult:
    """One client connection from the client's point of view."""

    route: str
    local_ip: str | None
    local_port: int | None
    reply: str
    error: str | None

    @property
    def status(self) -> int | None:
        """HTTP status of the reply, None when it is not HTTP."""
        if self.reply.startswith("HTTP/"):
            parts = self.reply.split(" ", 2)
            if len(parts) > 1 and parts[1].isdigit():
                return int(parts[1])
        return None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


MAX_CONNECTIONS = 200


def drive_clients(
    topo: Topology,
    r: Route | str,
    count: int,
    *,
    family: Family = 4,
    timeout: float = 5.0,
    pause: float = 0.0,
) -> list[ClientResult]:
    """Open ``count`` connections one after another from the client namespace to
    route ``r``'s frontend, send its request and read the reply to EOF."""
    rt = route(r)
    if not 0 <= count <= MAX_CONNECTIONS:
        raise ValueError(f"count must be in 0..{MAX_CONNECTIONS}, not {count}")
    spec = {
        "host": addresses(family).proxy_front,
        "port": rt.port,
        "count": count,
        "timeout": timeout,
        "request": rt.request.decode("latin-1"),
        "pause": pause,
    }
    budget = count * (2 * timeout + pause) + 10
    proc = topo.run(
        "client", [sys.executable, "-c", _CLIENT_SCRIPT, json.dumps(spec)], timeout=budget
    )
    if proc.returncode != 0:
        raise PeerError(f"client driver failed: {proc.stderr.strip()}")
    return [ClientResult(route=rt.name, **rec) for rec in json.loads(proc.stdout)]


# --------------------------------------------------------------------------
# One call


class ScenarioResult(NamedTuple):
    """What :func:`run_scenario` observed; unpacks as ``pcap, records, origin_log, ...``."""

    pcap: Path
    records: list[HAProxyRecord]
    origin_log: list[str]
    clients: list[ClientResult]
    namespaces: list[str]
    pids: list[int]
    workdir: Path
    client_family: int
    origin_family: int

    def origin_records(self) -> list[OriginRecord]:
        return [r for r in map(parse_origin_line, self.origin_log) if r is not None]

    def records_for(self, name: str) -> list[HAProxyRecord]:
        return [r for r in self.records if r.route == name]

    def truth(self) -> dict[str, object]:
        """JSON-ready ground truth: the log records are the authority."""
        return {
            "capture": self.pcap.name,
            "client_family": self.client_family,
            "origin_family": self.origin_family,
            "haproxy_records": [r.to_json() for r in self.records],
            "clients": [c.to_json() for c in self.clients],
            "origin_log": self.origin_log,
        }


def run_scenario(
    routes: Sequence[Route | str],
    pcap: Path,
    *,
    connections: int = 3,
    client_family: Family = 4,
    origin_family: Family = 4,
    capture_tool: Literal["tcpdump", "dumpcap"] = "tcpdump",
    min_duration: float | None = None,
    workdir: Path | None = None,
    timeout: float = 20.0,
) -> ScenarioResult:
    """Build a topology, run ``connections`` clients per route, capture at the origin.

    Order: nginx up, capture listening, HAProxy up (so its first health
    checks are captured), clients, wait for every connection to be logged,
    HAProxy soft stop, capture stop, teardown.  ``min_duration`` keeps HAProxy
    running at least that long (default 0.5 s when a route has health checks,
    so a few checks are certain to be in the capture).  The topology is gone
    when this returns, even on error.
    """
    rs = tuple(route(r) for r in routes)
    if min_duration is None:
        min_duration = 0.5 if any(r.health_check for r in rs) else 0.0
    pcap = Path(pcap)
    with Topology(workdir) as topo:
        origins = start_origins(topo, family=origin_family, timeout=timeout)
        with topo.capture(pcap, tool=capture_tool, timeout=timeout):
            haproxy = start_haproxy(topo, rs, origin_family=origin_family, timeout=timeout)
            started = time.monotonic()
            clients: list[ClientResult] = []
            for r in rs:
                clients += drive_clients(topo, r, connections, family=client_family)
            expected = sum(1 for c in clients if c.error is None)
            haproxy.wait_records(expected, timeout=timeout)
            # nginx logs a moment after it answers; its log is corroboration,
            # not the authority, so a short wait is enough.
            with contextlib.suppress(PeerError):
                _wait_for(lambda: len(origins.records()) >= expected, 2.0, "origin log", None, None)
            rest = min_duration - (time.monotonic() - started)
            if rest > 0:
                time.sleep(rest)
            haproxy.stop()
            records = haproxy.records()
        origin_log = origins.lines()
        namespaces = list(topo.namespaces.values())
        pids = list(topo.pids)
        used_workdir = topo.workdir
    return ScenarioResult(
        pcap=pcap,
        records=records,
        origin_log=origin_log,
        clients=clients,
        namespaces=namespaces,
        pids=pids,
        workdir=used_workdir,
        client_family=client_family,
        origin_family=origin_family,
    )


def processes_mentioning(*needles: str) -> list[int]:
    """Pids whose command line names one of ``needles`` (a test's work directory, its pcap):
    what a test checks it left nothing running."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(n in cmdline for n in needles):
            found.append(int(entry.name))
    return found
