"""Record ``tests/pcaps/troubleshooting.pcap``: a proxy fleet with four real problems.

The capture the troubleshooting notebook investigates, recorded from real
peers (tests/peers.py: network namespaces, HAProxy 2.6, nginx 1.22, tcpdump
at the origin's interface), with the answers written next to it in
``troubleshooting.ground-truth.json`` by the programs that made the traffic:
HAProxy's log, the second proxy's log and the clients' own sockets.  The
notebook compares pcapip's answers with that file, never with numbers copied
from pcapip's output.

What the origin (nginx, 10.77.2.2) sees during a few seconds:

* ``web``: HAProxy, round-robin over two egress addresses (10.77.2.1 and
  10.77.2.3), PROXY v2 to port 9001 (nginx ``listen ... proxy_protocol``): healthy.
* ``legacy``: HAProxy via 10.77.2.4, PROXY v1 to port 9001: healthy.
* ``api``: HAProxy via 10.77.2.4 to port 9001 **without** ``send-proxy``; it
  goes live part-way through the capture.  nginx expects a header, finds a
  GET, logs "broken header" and closes: *missing headers on one port*.
* ``admin``: HAProxy via 10.77.2.1, PROXY v2 to port 9080, an nginx server
  without ``proxy_protocol``: it answers 400, *the origin rejects the header*.
* ``lb2``: a second L4 proxy (a small relay, egress 10.77.2.5) sending PROXY v2
  with a CRC32C TLV.  It adds a unique-id TLV to every second connection and
  computes the checksum before appending it, so exactly those headers carry a
  *CRC32C mismatch*.
* ``spoof``: a host at 10.77.2.200, not one of the proxies, connects straight
  to port 9001 with a hand-written PROXY v1 line claiming to be a real client:
  *a spoofed header from an untrusted source* (trusted proxies: 10.77.2.0/29).

Needs root, haproxy, nginx and tcpdump.  Run::

    .venv/bin/python tests/gen/troubleshooting_pcap.py [--out tests/pcaps]

The recording is real, so a new run gives other ports and timestamps; the
ground truth changes with it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402
from record_peers import tool_versions  # noqa: E402

NAME = "troubleshooting"
MAX_BYTES = 200_000

ORIGIN = peers.IPV4.origin  # 10.77.2.2
FRONT = peers.IPV4.proxy_front  # 10.77.1.1, where clients connect
PP_PORT = peers.ORIGIN_PORTS[peers.Origin.HTTP_PP]  # 9001: nginx with proxy_protocol
PLAIN_PORT = peers.ORIGIN_PORTS[peers.Origin.HTTP]  # 9080: nginx without it

EGRESS_A = "10.77.2.1"  # HAProxy (the topology's own address)
EGRESS_B = "10.77.2.3"  # HAProxy, second source address
EGRESS_C = "10.77.2.4"  # HAProxy, third source address
LB2_EGRESS = "10.77.2.5"  # the relay
ROGUE = "10.77.2.200"  # not a proxy
TRUSTED = "10.77.2.0/29"
CLIENTS = [f"10.77.1.{n}" for n in range(10, 34)]
SPOOFED_CLIENT = CLIENTS[0]  # the rogue host pretends to be a real client

ROUNDS = 10
INTERVAL = 0.35  # seconds between rounds
API_LIVE_ROUND = 4  # the headerless api route starts here


@dataclass(frozen=True)
class Service:
    name: str
    port: int  # where clients connect (on FRONT)
    origin_port: int
    header: str  # "v1" | "v2" | "none"
    problem: str | None
    via: str  # "haproxy" | "lb2" | "direct"
    what: str


SERVICES = {
    s.name: s
    for s in (
        Service(
            "web", 8101, PP_PORT, "v2", None, "haproxy", "HAProxy send-proxy-v2, two egress IPs"
        ),
        Service("legacy", 8102, PP_PORT, "v1", None, "haproxy", "HAProxy send-proxy (v1)"),
        Service(
            "api",
            8103,
            PP_PORT,
            "none",
            "missing-header",
            "haproxy",
            "HAProxy backend without send-proxy in front of a proxy_protocol listener",
        ),
        Service(
            "admin",
            8104,
            PLAIN_PORT,
            "v2",
            "origin-rejects",
            "haproxy",
            "HAProxy send-proxy-v2 to an nginx server without proxy_protocol",
        ),
        Service(
            "lb2",
            8105,
            PP_PORT,
            "v2",
            None,  # per connection: "crc-mismatch" when it carried a unique id
            "lb2",
            "second L4 proxy: PROXY v2 + CRC32C; checksum computed before the unique-id TLV",
        ),
        Service(
            "spoof",
            PP_PORT,
            PP_PORT,
            "v1",
            "spoofed",
            "direct",
            f"hand-written PROXY v1 from {ROGUE} claiming client {SPOOFED_CLIENT}",
        ),
    )
}


def haproxy_config() -> str:
    out = [
        "global",
        "    log stdout format raw local0",
        "    maxconn 256",
        "defaults",
        "    mode tcp",
        "    log global",
        f'    log-format "{peers.HAPROXY_LOG_FORMAT}"',
        "    timeout connect 3s",
        "    timeout client 10s",
        "    timeout server 10s",
    ]
    backends = {
        "web": [
            f"server web-a {ORIGIN}:{PP_PORT} send-proxy-v2 source {EGRESS_A}",
            f"server web-b {ORIGIN}:{PP_PORT} send-proxy-v2 source {EGRESS_B}",
        ],
        "legacy": [f"server legacy {ORIGIN}:{PP_PORT} send-proxy source {EGRESS_C}"],
        "api": [f"server api {ORIGIN}:{PP_PORT} source {EGRESS_C}"],
        "admin": [f"server admin {ORIGIN}:{PLAIN_PORT} send-proxy-v2 source {EGRESS_A}"],
    }
    for name, servers in backends.items():
        svc = SERVICES[name]
        out += [
            f"frontend fe_{name}",
            f"    bind {FRONT}:{svc.port}",
            f"    default_backend be_{name}",
            f"backend be_{name}",
            "    balance roundrobin",
            *(f"    {s}" for s in servers),
        ]
    return "\n".join(out) + "\n"


# The second proxy.  Written out here rather than imported so that it runs as
# its own process inside the proxy namespace with nothing but the standard
# library and the ``crc32c`` package.
RELAY_SCRIPT = r"""
import json, select, socket, struct, sys, threading, crc32c
listen_ip, listen_port, egress_ip, origin_ip, origin_port = sys.argv[1:6]
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
lock = threading.Lock()
counter = [0]

def tlv(t, value):
    return struct.pack("!BH", t, len(value)) + value

def header(src, sport, dst, dport, unique_id):
    addrs = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    body = addrs + tlv(0x03, b"\0\0\0\0")
    head = SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(body))
    crc = crc32c.crc32c(head + body)
    body = addrs + tlv(0x03, struct.pack("!I", crc))
    if unique_id is not None:
        # the bug: the checksum above was taken before this TLV was added
        body += tlv(0x05, unique_id.encode())
    return SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body

def pump(a, b):
    socks = [a, b]
    open_ = {a: True, b: True}
    while any(open_.values()):
        ready, _, _ = select.select([s for s in socks if open_[s]], [], [], 10)
        if not ready:
            return
        for s in ready:
            other = b if s is a else a
            data = s.recv(65536)
            if data:
                other.sendall(data)
            else:
                open_[s] = False
                try:
                    other.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

def serve(conn, peer):
    with lock:
        counter[0] += 1
        n = counter[0]
    unique_id = f"lb2-{n:04d}" if n % 2 == 0 else None
    rec = {"n": n, "client_ip": peer[0], "client_port": peer[1], "unique_id": unique_id,
           "crc32c": "bad" if unique_id else "ok", "error": None}
    try:
        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        up.bind((egress_ip, 0))
        up.connect((origin_ip, int(origin_port)))
        rec["egress_ip"], rec["egress_port"] = up.getsockname()[:2]
        front = conn.getsockname()
        up.sendall(header(peer[0], peer[1], front[0], front[1], unique_id))
        pump(conn, up)
        up.close()
    except OSError as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    with lock:
        print(json.dumps(rec), flush=True)

srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((listen_ip, int(listen_port)))
srv.listen(64)
print("listening", flush=True)
while True:
    conn, peer = srv.accept()
    threading.Thread(target=serve, args=(conn, peer), daemon=True).start()
"""

# Opens the scheduled connections one by one from chosen source addresses,
# sends the job's bytes and reads the reply to EOF.
DRIVER_SCRIPT = r"""
import json, socket, sys, time
spec = json.loads(sys.argv[1])
out = []
for job in spec["jobs"]:
    delay = spec["t0"] + job["at"] - time.time()
    if delay > 0:
        time.sleep(delay)
    rec = {"job": job["id"], "local_ip": None, "local_port": None, "started": None,
           "reply": "", "error": None}
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.bind((job["src"], 0))
        rec["started"] = time.time()
        s.connect((job["host"], job["port"]))
        with s:
            rec["local_ip"], rec["local_port"] = s.getsockname()[:2]
            s.sendall(job["send"].encode("latin-1"))
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
print(json.dumps(out))
"""


def request(path: str) -> str:
    return f"GET /{path} HTTP/1.0\r\nHost: origin\r\n\r\n"


def schedule() -> tuple[list[dict], list[dict]]:
    """(client-namespace jobs, rogue jobs): who connects where, and when."""
    clients: list[dict] = []
    rogue: list[dict] = []
    rotation = iter(range(10_000))

    def client(name: str, at: float) -> None:
        svc = SERVICES[name]
        src = CLIENTS[next(rotation) % len(CLIENTS)]
        clients.append(
            {"id": len(clients), "service": name, "at": round(at, 3), "src": src,
             "host": FRONT, "port": svc.port, "send": request(name)}
        )  # fmt: skip

    for r in range(ROUNDS):
        at = r * INTERVAL
        for _ in range(3):
            client("web", at)
        if r % 2 == 0:
            client("legacy", at)
        if r >= API_LIVE_ROUND:
            client("api", at)
            client("api", at)
        if r in (2, 7):
            client("admin", at)
        client("lb2", at)
        client("lb2", at)
        if r in (5, 8):
            spoof_port = 40_000 + r
            line = f"PROXY TCP4 {SPOOFED_CLIENT} {FRONT} {spoof_port} 8101\r\n"
            rogue.append(
                {"id": len(rogue), "service": "spoof", "at": round(at + INTERVAL / 2, 3),
                 "src": ROGUE, "host": ORIGIN, "port": PP_PORT,
                 "send": line + request("admin/users"),
                 "claimed_client": [SPOOFED_CLIENT, spoof_port]}
            )  # fmt: skip
    return clients, rogue


def _status(reply: str) -> int | None:
    parts = reply.split(" ", 2)
    if reply.startswith("HTTP/") and len(parts) > 1 and parts[1].isdigit():
        return int(parts[1])
    return None


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise peers.PeerError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _run(topo: peers.Topology, node: peers.Node, argv: list[str]) -> str:
    proc = topo.run(node, argv)
    if proc.returncode != 0:
        raise peers.PeerError(f"{' '.join(argv)} in {node}: {proc.stdout}{proc.stderr}")
    return proc.stdout


def _listening(topo: peers.Topology, node: peers.Node, ports: list[int]) -> bool:
    have = set()
    for line in _run(topo, node, ["ss", "-ltnH"]).splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[3].rsplit(":", 1)[-1].isdigit():
            have.add(int(cols[3].rsplit(":", 1)[-1]))
    return set(ports) <= have


@contextlib.contextmanager
def capture(topo: peers.Topology, path: Path) -> Iterator[None]:
    """tcpdump at the origin's interface, failing if the kernel dropped a packet.

    In immediate mode libpcap sizes every ring slot for the snap length, so
    the default 2 MB buffer with the default 256 KB snap length holds only
    eight packets and a burst of short connections overflows it whenever
    tcpdump is not scheduled at once.  A snap length just above the MTU and a
    larger buffer keep every packet whole and every burst.
    """
    log = topo.workdir / "tcpdump.log"
    argv = ["tcpdump", "-i", peers.ORIGIN_IF, "-n", "-U", "--immediate-mode", "-Z", "root"]
    argv += ["-s", "1600", "-B", "16384", "-w", str(path)]
    proc = topo.spawn("origin", argv, log=log)
    _wait(lambda: "listening on" in log.read_text(errors="replace"), 10, "tcpdump")
    try:
        yield
    finally:
        time.sleep(0.2)
        peers.stop_process(proc, sig=signal.SIGINT, grace=10)
    text = log.read_text(errors="replace")
    dropped = re.search(r"(\d+) packets? dropped by kernel", text)
    if proc.returncode not in (0, -signal.SIGINT) or dropped is None:
        raise peers.PeerError(f"tcpdump failed ({proc.returncode}): {text[-2000:]}")
    if int(dropped.group(1)):
        raise peers.PeerError(f"tcpdump lost packets, record again: {dropped.group(0)}")
    path.chmod(0o644)


def _relay_records(log: Path) -> list[dict]:
    out = []
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            if isinstance(rec, dict):
                out.append(rec)
    return out


def record(out_dir: Path) -> tuple[Path, Path]:
    pcap = out_dir / f"{NAME}.pcap"
    client_jobs, rogue_jobs = schedule()
    with peers.Topology() as topo:
        for ip in CLIENTS:
            _run(topo, "client", ["ip", "addr", "add", f"{ip}/24", "dev", peers.CLIENT_IF])
        for ip in (EGRESS_B, EGRESS_C, LB2_EGRESS, ROGUE):
            _run(topo, "proxy", ["ip", "addr", "add", f"{ip}/24", "dev", peers.PROXY_BACK_IF])
        origins = peers.start_origins(topo, family=4)

        cfg = topo.workdir / "haproxy.cfg"
        cfg.write_text(haproxy_config())
        check = topo.run("proxy", ["haproxy", "-c", "-f", str(cfg)])
        if check.returncode != 0:
            raise peers.PeerError(f"haproxy rejected {cfg}: {check.stdout}{check.stderr}")
        relay_log = topo.workdir / "lb2.log"
        lb2 = SERVICES["lb2"]
        relay_argv = [sys.executable, "-u", "-c", RELAY_SCRIPT, FRONT, str(lb2.port)]
        relay_argv += [LB2_EGRESS, ORIGIN, str(lb2.origin_port)]

        with capture(topo, pcap):
            hlog = topo.workdir / "haproxy.log"
            hproc = topo.spawn("proxy", ["haproxy", "-db", "-f", str(cfg)], log=hlog)
            haproxy = peers.HAProxy(hproc, hlog, cfg, ())
            relay = topo.spawn("proxy", relay_argv, log=relay_log)
            ports = [s.port for s in SERVICES.values() if s.via != "direct"]
            _wait(lambda: _listening(topo, "proxy", ports), 10, f"listeners on {ports}")
            if relay.poll() is not None or hproc.poll() is not None:
                raise peers.PeerError(f"relay or HAProxy exited: {relay_log.read_text()}")

            t0 = time.time() + 0.3
            drivers = []
            for node, jobs in (("client", client_jobs), ("proxy", rogue_jobs)):
                spec = json.dumps({"t0": t0, "jobs": jobs})
                argv = topo.command(node, [sys.executable, "-c", DRIVER_SCRIPT, spec])
                drivers.append(
                    subprocess.Popen(
                        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                    )
                )
            results = []
            try:
                for d in drivers:
                    out, err = d.communicate(timeout=ROUNDS * INTERVAL + 60)
                    if d.returncode != 0:
                        raise peers.PeerError(f"client driver failed: {err}")
                    results.append(json.loads(out))
            finally:
                for d in drivers:
                    if d.poll() is None:
                        d.kill()
                        d.wait()
            client_res, rogue_res = results

            via_haproxy = [
                j for j, r in zip(client_jobs, client_res, strict=True)
                if SERVICES[j["service"]].via == "haproxy" and r["error"] is None
            ]  # fmt: skip
            via_lb2 = [j for j in client_jobs if j["service"] == "lb2"]
            haproxy.wait_records(len(via_haproxy), timeout=10)
            _wait(lambda: len(_relay_records(relay_log)) >= len(via_lb2), 10, "relay log")
            with contextlib.suppress(peers.PeerError):
                n = len(client_jobs) + len(rogue_jobs)
                _wait(lambda: len(origins.records()) >= n, 2.0, "origin log")
            haproxy.stop()
            records = haproxy.records()
        relay_recs = _relay_records(relay_log)
        origin_log = origins.lines()

    truth = ground_truth(
        client_jobs, client_res, rogue_jobs, rogue_res, records, relay_recs, origin_log
    )
    truth["recorded_at"] = t0
    # The recording names a connection by its egress address and port. When the origin closes
    # first, a proxy may reuse a source port at once (the origin holds TIME_WAIT), and two
    # connections would share one name: refuse such a recording, as one with kernel drops.
    names = Counter((c["egress_ip"], c["egress_port"]) for c in truth["connections"])
    reused = sorted(k for k, n in names.items() if n > 1)
    if reused:
        raise peers.PeerError(f"egress ports reused, record again: {reused}")
    size = pcap.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{pcap}: {size} bytes, more than {MAX_BYTES}")
    truth_path = out_dir / f"{NAME}.ground-truth.json"
    truth_path.write_text(json.dumps(truth, indent=1) + "\n")
    return pcap, truth_path


def ground_truth(
    client_jobs: list[dict],
    client_res: list[dict],
    rogue_jobs: list[dict],
    rogue_res: list[dict],
    haproxy_records: list[peers.HAProxyRecord],
    relay_records: list[dict],
    origin_log: list[str],
) -> dict:
    """One entry per connection the origin saw, keyed by its egress address:port.

    ``client_ip``/``client_port`` are who really connected; ``announced_ip``/
    ``announced_port`` what the header told the origin (None without a
    header; the spoofed address for the rogue host).
    """
    by_client = {(r.client_ip, r.client_port): r for r in haproxy_records}
    by_relay = {(r["client_ip"], r["client_port"]): r for r in relay_records}
    conns: list[dict] = []
    for job, res in zip(client_jobs, client_res, strict=True):
        svc = SERVICES[job["service"]]
        if res["error"] is not None:
            raise SystemExit(f"client connection {job} failed: {res['error']}")
        key = (res["local_ip"], res["local_port"])
        entry = {
            "service": svc.name,
            "via": svc.via,
            "client_ip": key[0],
            "client_port": key[1],
            "started": res["started"],
            "reply_status": _status(res["reply"]),
            "reply_bytes": len(res["reply"]),
            "origin_port": svc.origin_port,
            "header": svc.header,
            "crc32c": None,
            "unique_id": None,
            "problem": svc.problem,
        }
        if svc.via == "haproxy":
            h = by_client.get(key)
            if h is None:
                raise SystemExit(f"HAProxy did not log client {key}")
            entry.update(egress_ip=h.egress_ip, egress_port=h.egress_port, frontend_ip=h.frontend_ip,
                         frontend_port=h.frontend_port)  # fmt: skip
        else:
            r = by_relay.get(key)
            if r is None or r.get("error"):
                raise SystemExit(f"relay did not carry client {key}: {r}")
            entry.update(egress_ip=r["egress_ip"], egress_port=r["egress_port"], frontend_ip=FRONT,
                         frontend_port=svc.port, crc32c=r["crc32c"], unique_id=r["unique_id"])  # fmt: skip
            entry["problem"] = "crc-mismatch" if r["crc32c"] == "bad" else None
        if svc.header == "none":
            entry.update(announced_ip=None, announced_port=None)
        else:
            entry.update(announced_ip=entry["client_ip"], announced_port=entry["client_port"])
        conns.append(entry)
    for job, res in zip(rogue_jobs, rogue_res, strict=True):
        if res["error"] is not None:
            raise SystemExit(f"rogue connection {job} failed: {res['error']}")
        claimed_ip, claimed_port = job["claimed_client"]
        conns.append(
            {
                "service": "spoof",
                "via": "direct",
                "client_ip": res["local_ip"],  # the rogue host itself
                "client_port": res["local_port"],
                "started": res["started"],
                "reply_status": _status(res["reply"]),
                "reply_bytes": len(res["reply"]),
                "origin_port": PP_PORT,
                "header": "v1",
                "crc32c": None,
                "unique_id": None,
                "problem": "spoofed",
                "egress_ip": res["local_ip"],
                "egress_port": res["local_port"],
                "frontend_ip": FRONT,
                "frontend_port": SERVICES["web"].port,
                "announced_ip": claimed_ip,
                "announced_port": claimed_port,
            }
        )
    conns.sort(key=lambda c: c["started"])
    return {
        "capture": f"{NAME}.pcap",
        "description": (
            "a proxy fleet in front of nginx with four problems: headerless api connections to "
            "the proxy_protocol port, PROXY headers sent to a port without proxy_protocol, "
            "CRC32C mismatches from lb2, spoofed headers from a host that is not a proxy"
        ),
        "capture_point": f"origin namespace, interface {peers.ORIGIN_IF} (tcpdump)",
        "origin_ip": ORIGIN,
        "origin_ports": {
            str(PP_PORT): "nginx http, listen ... proxy_protocol",
            str(PLAIN_PORT): "nginx http without proxy_protocol",
        },
        "trusted": TRUSTED,
        "proxies": {
            EGRESS_A: "HAProxy (web, admin)",
            EGRESS_B: "HAProxy (web)",
            EGRESS_C: "HAProxy (legacy, api)",
            LB2_EGRESS: "lb2 relay",
        },
        "rogue_ip": ROGUE,
        "api_live_from": min(c["started"] for c in conns if c["service"] == "api"),
        "services": {
            s.name: {
                "client_port": s.port,
                "origin_port": s.origin_port,
                "header": s.header,
                "via": s.via,
                "what": s.what,
            }
            for s in SERVICES.values()
        },
        "notes": (
            "connections: one per TCP connection the origin saw, keyed by egress_ip:egress_port "
            "(from HAProxy's %bi:%bp, the relay's own socket, or the rogue client's socket). "
            "client_ip:client_port is who really connected; announced_ip:announced_port is "
            "what the header claimed (None when no header was sent)."
        ),
        "tools": tool_versions(),
        "connections": conns,
        "haproxy_records": [r.to_json() for r in haproxy_records],
        "relay_records": relay_records,
        "origin_log": origin_log,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=TESTS / "pcaps")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    pcap, truth = record(args.out)
    print(f"{pcap} ({pcap.stat().st_size} bytes), {truth.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
