"""Real kernel tunnels between HAProxy and its origins: ground truth for decapsulation.

:mod:`peers` proves pcapip against HAProxy's log on a plain link.  Mirrors and
overlays deliver the same connections inside VXLAN, GENEVE, GRE, ERSPAN, IP-in-IP
or MPLS, and two tenants may use the same inner addresses.  Here the Linux kernel
makes the tunnel, HAProxy sends PROXY headers through it, tcpdump captures the
encapsulated packets on the underlay, and the tests compare pcapip (and tshark)
with HAProxy's log::

    underlay:  uproxy (10.99.0.1, fd99::1) ── veth ul0/ul1 ── uorigin (10.99.0.2, fd99::2)
               capture on ul0: every encapsulated packet of every tenant, once
    tenant a:  client-a (10.77.1.2) ─ proxy-a (HAProxy) ══ tunnel id A ══ origin-a (nginx)
    tenant b:  client-b (10.77.1.3) ─ proxy-b (HAProxy) ══ tunnel id B ══ origin-b (nginx)

The tunnel devices are created from the underlay namespaces straight into the
tenants' ("x-netns": the encapsulating socket and its routes stay in the underlay)
under :mod:`peers`' back-link names (``pb0``, ``or0``) with its back-link
addresses (10.77.2.1 -> 10.77.2.2, fd77:2::1 -> fd77:2::2), so every tenant has the
same inner address pair and :func:`peers.start_origins`, :func:`peers.start_haproxy`
and :func:`peers.drive_clients` work unchanged.  HAProxy's egress ports are pinned
(``source_port_base``), so both tenants open byte-identical inner connections: only
the tunnel identity tells them apart.

A kind the running kernel lacks is reported by :func:`kernel_lacks` with the exact
``ip`` error, for the tests to skip with.  MPLS is not a device: it runs one tenant
over a direct proxy-origin veth with label routes, captured on that veth.
Namespace names carry :data:`peers.NS_PREFIX`, the pid and a random token, so
:func:`peers.cleanup_stale` removes what a killed run left.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import peers
from peers import (
    CLIENT_IF,
    IPV4,
    IPV6,
    NS_PREFIX,
    ORIGIN_IF,
    PROXY_BACK_IF,
    PROXY_FRONT_IF,
    ClientResult,
    Family,
    HAProxyRecord,
    Route,
    Topology,
    _run,
)

UNDERLAY_IF = {"uproxy": "ul0", "uorigin": "ul1"}
UNDERLAY = {4: ("10.99.0.1", "10.99.0.2", 24), 6: ("fd99::1", "fd99::2", 64)}
#: HAProxy's first egress port in every tenant (see :func:`peers.haproxy_config`)
SOURCE_PORT_BASE = 40000


@dataclass(frozen=True)
class TunnelKind:
    """One tunnel: the ``ip link`` (or OVS) type and how its tenants are told apart.

    ``ids`` are the tenants' identities (VNI, GRE key, ERSPAN session; one tenant
    for kinds without an identity); ``label`` is the ``tunnel`` column's text as
    ``pcapip.decode.tunnels.tunnel_label`` writes it, ``{id}`` filled in.
    """

    name: str
    device: str  # ``ip link ... type <device>``; "mpls" is routes, not a device
    underlay: Family
    inner: tuple[Family, ...]
    ids: tuple[int, ...]
    label: str
    port: int | None = None  # UDP destination port of UDP tunnels
    extra: tuple[str, ...] = ()  # more ``ip link`` arguments, or OVS ``options:`` (key=value)
    via: str = "kernel"  # "kernel", or "ovs": Open vSwitch's userspace datapath sends it

    def link_args(
        self, ident: int, local: str, remote: str, dev: str | None, port: int | None
    ) -> list[str]:
        """``type <device> ...`` for ``ip link add``."""
        if self.device == "vxlan":
            args = ["id", ident, "local", local, "remote", remote, "dstport", port or self.port]
            args += ["dev", dev] if dev else []
        elif self.device == "geneve":
            args = ["id", ident, "remote", remote, "dstport", port or self.port]
        elif self.device in ("gre", "gretap", "ip6gre", "ip6gretap", "erspan", "ip6erspan"):
            args = ["local", local, "remote", remote, "key", ident]
        else:  # ipip, sit, ip6tnl: no identity
            args = ["local", local, "remote", remote]
        return ["type", self.device, *map(str, args), *self.extra]

    def tunnel_label(self, ident: int, inner_family: Family) -> str:
        """The ``tunnel`` column pcapip should give (``4in6``/``6in6`` by inner family)."""
        return self.label.format(id=ident, inner=inner_family)


def _kind(name, device, underlay, inner, ids, label, port=None, extra=(), via="kernel"):
    return TunnelKind(name, device, underlay, inner, ids, label, port, tuple(extra), via)


KINDS: dict[str, TunnelKind] = {
    k.name: k
    for k in (
        _kind("vxlan", "vxlan", 4, (4, 6), (5001, 5002), "vxlan:{id}", 4789),
        _kind("vxlan6", "vxlan", 6, (4, 6), (5001, 5002), "vxlan:{id}", 4789),
        _kind("geneve", "geneve", 4, (4, 6), (7001, 7002), "geneve:{id}", 6081),
        _kind("gre", "gre", 4, (4, 6), (42, 43), "gre:key={id}"),
        _kind("gretap", "gretap", 4, (4, 6), (42, 43), "gre:key={id}"),
        _kind("ip6gre", "ip6gre", 6, (4, 6), (42, 43), "gre:key={id}"),
        _kind("ip6gretap", "ip6gretap", 6, (4, 6), (42, 43), "gre:key={id}"),
        # ERSPAN's session ID is the low 10 bits of the GRE key the kernel is given
        _kind("erspan2", "erspan", 4, (4, 6), (101, 102), "erspan2:session={id}",
              extra=("seq", "erspan_ver", "1", "erspan", "123")),
        _kind("erspan3", "erspan", 4, (4, 6), (101, 102), "erspan3:session={id}",
              extra=("seq", "erspan_ver", "2", "erspan_dir", "ingress", "erspan_hwid", "7")),
        _kind("ipip", "ipip", 4, (4,), (0,), "ipip"),
        _kind("sit", "sit", 4, (6,), (0,), "6in4"),
        _kind("ip6tnl", "ip6tnl", 6, (4, 6), (0,), "{inner}in6", extra=("mode", "any")),
        # one label both ways: a connection keeps one identity in either direction
        _kind("mpls", "mpls", 4, (4,), (1001,), "mpls:{id}"),
        # Open vSwitch's userspace datapath (no kernel module) for what this kernel lacks;
        # its "gre" is GRE carrying Ethernet (0x6558), like the kernel's gretap
        _kind("ovs-geneve", "geneve", 4, (4, 6), (7001, 7002), "geneve:{id}", 6081, via="ovs"),
        _kind("ovs-geneve6", "geneve", 6, (4, 6), (7001, 7002), "geneve:{id}", 6081, via="ovs"),
        _kind("ovs-gre", "gre", 4, (4, 6), (42, 43), "gre:key={id}", via="ovs"),
        _kind("ovs-ip6gre", "ip6gre", 6, (4, 6), (42, 43), "gre:key={id}", via="ovs"),
        _kind("ovs-erspan2", "erspan", 4, (4, 6), (101, 102), "erspan2:session={id}",
              extra=("erspan_ver=1", "erspan_idx=123"), via="ovs"),
        _kind("ovs-erspan3", "erspan", 4, (4, 6), (101, 102), "erspan3:session={id}",
              extra=("erspan_ver=2", "erspan_dir=1", "erspan_hwid=7"), via="ovs"),
        _kind("ovs-ip6erspan2", "ip6erspan", 6, (4, 6), (101, 102), "erspan2:session={id}",
              extra=("erspan_ver=1", "erspan_idx=123"), via="ovs"),
    )
}


def kind(k: TunnelKind | str) -> TunnelKind:
    return k if isinstance(k, TunnelKind) else KINDS[k]


@functools.cache
def kernel_lacks(k: TunnelKind | str) -> str | None:
    """Why this kernel cannot make ``k`` (the exact ``ip`` error), or None when it can.

    Tried in a scratch namespace of our own, deleted at once; ``modprobe`` is not
    attempted (a test must not load kernel modules).
    """
    tk = kind(k)
    if tk.via == "ovs":
        return ovs_lacks()
    ns = f"{NS_PREFIX}{os.getpid()}-{secrets.token_hex(3)}-probe"
    _run(["ip", "netns", "add", ns])
    local, remote, _ = UNDERLAY[tk.underlay]
    if tk.device == "mpls":  # mpls_router (labels, a sysctl table) and mpls_iptunnel (encap)
        label = str(tk.ids[0])
        steps = [["ip", "netns", "exec", ns, "sysctl", "-qw", "net.mpls.platform_labels=4096"],
                 ["ip", "-n", ns, "-f", "mpls", "route", "add", label, "dev", "lo"],
                 ["ip", "-n", ns, "route", "add", "192.0.2.0/24", "encap", "mpls", label,
                  "dev", "lo"]]
    else:
        steps = [["ip", "-n", ns, "link", "add", "t0",
                  *tk.link_args(tk.ids[0], local, remote, None, None)]]
    try:
        for argv in steps:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            if proc.returncode != 0:
                shown = " ".join(argv).replace(f" -n {ns}", "").replace(f"ip netns exec {ns} ", "")
                return f"`{shown}`: {proc.stderr.strip() or proc.returncode}"
        return None
    finally:
        peers._kill_namespace(ns)


def _addr(ns: str, ifname: str, family: Family, address: str, prefix: int) -> None:
    extra = ["nodad"] if family == 6 else []
    _run(["ip", "-n", ns, "addr", "add", f"{address}/{prefix}", "dev", ifname, *extra])

# --------------------------------------------------------------------------
# Open vSwitch, userspace datapath: tunnels without kernel tunnel devices

OVS_TOOLS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ethtool")
OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
#: inner MTU: OVS's userspace datapath does not fragment, the underlay veth has 1500
OVS_INNER_MTU = 1400


def ovs_lacks() -> str | None:
    """Why Open vSwitch cannot send tunnels here, or None when it can."""
    missing = [t for t in OVS_TOOLS if shutil.which(t) is None]
    if missing:
        return f"Open vSwitch tools missing: {', '.join(missing)} (Debian: openvswitch-switch, ethtool)"
    if not OVS_SCHEMA.exists():
        return f"Open vSwitch schema missing: {OVS_SCHEMA}"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun missing: OVS's userspace bridges need tap devices"
    return None


class OVSwitch:
    """ovsdb-server and ovs-vswitchd of our own in one namespace (datapath_type=netdev).

    Their sockets, database and logs live in ``root``; they are spawned through the
    :class:`Topology`, so they stop with it.
    """

    def __init__(self, topo: Topology, node: str, root: Path) -> None:
        self.topo, self.node, self.root = topo, node, root
        self.db = root / "db.sock"

    def start(self, timeout: float = 10.0) -> None:
        r = self.root
        r.mkdir(parents=True, exist_ok=True)
        _run(["ovsdb-tool", "create", str(r / "conf.db"), str(OVS_SCHEMA)])
        env = ["env", f"OVS_RUNDIR={r}", f"OVS_LOGDIR={r}", f"OVS_DBDIR={r}"]
        common = ["--no-chdir", "-vconsole:off"]
        log = r / "ovsdb.log"
        proc = self.topo.spawn(self.node, [*env, "ovsdb-server", str(r / "conf.db"),
                                           f"--remote=punix:{self.db}", f"--unixctl={r}/ovsdb.ctl",
                                           f"--log-file={log}", *common], log=r / "ovsdb.out")
        peers._wait_for(self.db.exists, timeout, "ovsdb-server", proc, log)
        self.vsctl("--no-wait", "init")
        log = r / "vswitchd.log"
        proc = self.topo.spawn(self.node, [*env, "ovs-vswitchd", f"unix:{self.db}",
                                           f"--unixctl={r}/vswitchd.ctl", f"--log-file={log}",
                                           *common], log=r / "vswitchd.out")
        peers._wait_for((r / "vswitchd.ctl").exists, timeout, "ovs-vswitchd", proc, log)

    def vsctl(self, *args: str) -> None:
        _run(["ovs-vsctl", f"--db=unix:{self.db}", "--timeout=10", *args], timeout=15)

    def bridge(self, name: str, *ports: str) -> None:
        """A userspace bridge (MAC learning) with ``ports`` (AF_PACKET on veths)."""
        cmd = ["add-br", name, "--", "set", "bridge", name, "datapath_type=netdev"]
        for port in ports:
            cmd += ["--", "add-port", name, port]
        self.vsctl(*cmd)


class Underlay(Topology):
    """The two underlay namespaces and the veth between them (the capture point)."""

    def __init__(self, token: str, family: Family, workdir: Path, *, ovs: bool = False) -> None:
        super().__init__(workdir)
        self.token = token
        self.family = family
        self.namespaces = {n: f"{NS_PREFIX}{token}-{n}" for n in UNDERLAY_IF}
        self.ovs = {n: OVSwitch(self, n, workdir / f"ovs-{n}") for n in UNDERLAY_IF} if ovs else {}

    def _build(self) -> None:
        ns = self.namespaces
        for name in ns.values():
            _run(["ip", "netns", "add", name])
        _run(["ip", "link", "add", "ul0", "netns", ns["uproxy"], "type", "veth"]
             + ["peer", "name", "ul1", "netns", ns["uorigin"]])
        for i, node in enumerate(UNDERLAY_IF):
            _run(["ip", "-n", ns[node], "link", "set", UNDERLAY_IF[node], "up"])
            _run(["ip", "-n", ns[node], "link", "set", "lo", "up"])
            # with OVS the underlay address is its bridge's (a tap), for its tunnel routes;
            # the veth is only a port, so the kernel never answers the tunnel's packets
            ifname = UNDERLAY_IF[node]
            if self.ovs:
                self.ovs[node].start()
                self.ovs[node].bridge("br-ul", ifname)
                ifname = "br-ul"
                _run(["ip", "-n", ns[node], "link", "set", ifname, "up"])
            for fam in (4, 6):
                _addr(ns[node], ifname, fam, UNDERLAY[fam][i], UNDERLAY[fam][2])


class Tenant(Topology):
    """One tenant's client, proxy and origin; proxy and origin joined by the tunnel."""

    def __init__(
        self, lab: TunnelLab, name: str, index: int, ident: int, workdir: Path
    ) -> None:
        super().__init__(workdir)
        self.lab = lab
        self.name = name
        self.ident = ident
        self.client_ips = {4: f"10.77.1.{2 + index}", 6: f"fd77:1::{2 + index}"}
        self.token = lab.token
        self.namespaces = {n: f"{NS_PREFIX}{lab.token}-{name}-{n}" for n in peers.NODES}

    def _build(self) -> None:
        ns = self.namespaces
        for name in ns.values():
            _run(["ip", "netns", "add", name])
        _run(["ip", "link", "add", CLIENT_IF, "netns", ns["client"], "type", "veth"]
             + ["peer", "name", PROXY_FRONT_IF, "netns", ns["proxy"]])
        for fam, addrs in ((4, IPV4), (6, IPV6)):
            _addr(ns["client"], CLIENT_IF, fam, self.client_ips[fam], addrs.prefix)
            _addr(ns["proxy"], PROXY_FRONT_IF, fam, addrs.proxy_front, addrs.prefix)
        if self.lab.kind.via == "ovs":
            self._build_ovs()
        elif self.lab.kind.device == "mpls":
            self._build_mpls()
        else:
            self._build_tunnel()
        for node, ifname in (("client", CLIENT_IF), ("proxy", PROXY_FRONT_IF),
                             ("proxy", PROXY_BACK_IF), ("origin", ORIGIN_IF)):
            _run(["ip", "-n", ns[node], "link", "set", ifname, "up"])
        for node in peers.NODES:
            _run(["ip", "-n", ns[node], "link", "set", "lo", "up"])

    def _inner_addresses(self) -> None:
        for fam in self.lab.kind.inner:
            addrs = peers.addresses(fam)
            _addr(self.namespaces["proxy"], PROXY_BACK_IF, fam, addrs.proxy_back, addrs.prefix)
            _addr(self.namespaces["origin"], ORIGIN_IF, fam, addrs.origin, addrs.prefix)

    def _build_tunnel(self) -> None:
        tk, ul = self.lab.kind, self.lab.underlay.namespaces
        a, b, _ = UNDERLAY[tk.underlay]
        for ul_node, node, ifname, local, remote in (
            ("uproxy", "proxy", PROXY_BACK_IF, a, b),
            ("uorigin", "origin", ORIGIN_IF, b, a),
        ):
            args = tk.link_args(self.ident, local, remote, UNDERLAY_IF[ul_node], self.lab.port)
            _run(["ip", "-n", ul[ul_node], "link", "add", ifname,
                  "netns", self.namespaces[node], *args])
        self._inner_addresses()

    def _build_ovs(self) -> None:
        """A veth from each tenant end into the underlay namespace, bridged by OVS to a
        tunnel port with the tenant's key."""
        tk, ul, port = self.lab.kind, self.lab.underlay, f"t{self.name}"
        a, b, _ = UNDERLAY[tk.underlay]
        for ul_node, node, ifname, remote in (
            ("uproxy", "proxy", PROXY_BACK_IF, b),
            ("uorigin", "origin", ORIGIN_IF, a),
        ):
            ns = self.namespaces[node]
            _run(["ip", "link", "add", ifname, "netns", ns, "mtu", str(OVS_INNER_MTU),
                  "type", "veth", "peer", "name", port, "netns", ul.namespaces[ul_node]])
            _run(["ip", "-n", ul.namespaces[ul_node], "link", "set", port, "up"])
            # OVS reads the veth with AF_PACKET: checksums left to offload would stay unset
            proc = self.run(node, ["ethtool", "-K", ifname, "tx", "off"])
            if proc.returncode:
                raise peers.PeerError(f"ethtool -K {ifname} tx off: {proc.stderr.strip()}")
            tun = f"tun-{self.name}"
            options = [f"options:remote_ip={remote}", f"options:key={self.ident}"]
            options += [f"options:{o}" for o in tk.extra]
            sw = ul.ovs[ul_node]
            sw.bridge(f"br-{self.name}", port)
            sw.vsctl("add-port", f"br-{self.name}", tun, "--", "set", "interface", tun,
                     f"type={tk.device}", *options)
        self._inner_addresses()

    def _build_mpls(self) -> None:
        """MPLS over a direct veth: each side pushes the tenant's label towards the other
        and pops it on receipt (delivered locally through ``lo``)."""
        ns, label = self.namespaces, str(self.ident)
        _run(["ip", "link", "add", PROXY_BACK_IF, "netns", ns["proxy"], "type", "veth"]
             + ["peer", "name", ORIGIN_IF, "netns", ns["origin"]])
        self._inner_addresses()
        for node, ifname, peer in (("proxy", PROXY_BACK_IF, IPV4.origin),
                                   ("origin", ORIGIN_IF, IPV4.proxy_back)):
            run = functools.partial(self.run, node, timeout=10)
            for argv in (
                ["sysctl", "-qw", "net.mpls.platform_labels=4096"],
                ["sysctl", "-qw", f"net.mpls.conf.{ifname}.input=1"],
                ["sysctl", "-qw", "net.mpls.conf.lo.input=1"],
            ):
                proc = run(argv)
                if proc.returncode:
                    raise peers.PeerError(f"{argv}: {proc.stderr.strip()}")
            _run(["ip", "-n", ns[node], "link", "set", ifname, "up"])
            _run(["ip", "-n", ns[node], "-f", "mpls", "route", "add", label, "dev", "lo"])
            _run(["ip", "-n", ns[node], "route", "add", f"{peer}/32", "encap", "mpls", label,
                  "via", "inet", peer, "dev", ifname])


class TunnelLab:
    """An underlay and its tenants; a context manager that leaves nothing behind."""

    def __init__(
        self, k: TunnelKind | str, *, port: int | None = None, workdir: Path | None = None
    ) -> None:
        self.kind = kind(k)
        self.port = port
        self.token = f"{os.getpid()}-{secrets.token_hex(3)}"
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="pcapip-tunnels-"))
        self.underlay = Underlay(self.token, self.kind.underlay, self.workdir / "underlay",
                                 ovs=self.kind.via == "ovs")
        self.tenants = [
            Tenant(self, name, i, ident, self.workdir / f"tenant-{name}")
            for i, (name, ident) in enumerate(zip("ab", self.kind.ids, strict=False))
        ]
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> TunnelLab:
        peers.cleanup_stale()
        try:
            self._stack.enter_context(self.underlay)
            for t in self.tenants:
                self._stack.enter_context(t)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Tenants first (their processes, their tunnel ends), then the underlay."""
        self._stack.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def namespaces(self) -> list[str]:
        return [n for t in (self.underlay, *self.tenants) for n in t.namespaces.values()]

    def capture(self, pcap: Path, *, timeout: float = 10.0):
        """tcpdump on the underlay veth (MPLS: on the tenant's own proxy-origin veth)."""
        if self.kind.device == "mpls":
            return self.tenants[0].capture(pcap, node="proxy", iface=PROXY_BACK_IF,
                                           timeout=timeout)
        return self.underlay.capture(pcap, node="uproxy", iface="ul0", timeout=timeout)


@dataclass
class TenantResult:
    """What one tenant's HAProxy logged and its clients saw."""

    name: str
    ident: int
    label: str
    client_ips: dict[int, str]
    records: list[HAProxyRecord]
    clients: list[ClientResult]
    origin_log: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "tenant": self.name, "ident": self.ident, "tunnel": self.label,
            "client_ips": self.client_ips,
            "haproxy_records": [r.to_json() for r in self.records],
            "clients": [c.to_json() for c in self.clients], "origin_log": self.origin_log,
        }


@dataclass
class TunnelResult:
    pcap: Path
    kind: TunnelKind
    port: int
    tenants: list[TenantResult]
    namespaces: list[str]
    pids: list[int]
    workdir: Path

    @property
    def records(self) -> list[tuple[TenantResult, HAProxyRecord]]:
        return [(t, r) for t in self.tenants for r in t.records]


def run_tunnel_scenario(
    k: TunnelKind | str,
    routes: Sequence[Route | str],
    pcap: Path,
    *,
    port: int | None = None,
    connections: int = 3,
    client_family: Family = 4,
    origin_family: Family = 4,
    workdir: Path | None = None,
    timeout: float = 20.0,
) -> TunnelResult:
    """Build the lab, drive ``connections`` clients per route in every tenant at once,
    capture the underlay; everything is torn down when this returns, even on error."""
    rs = tuple(peers.route(r) for r in routes)
    tk = kind(k)
    if origin_family not in tk.inner:
        raise ValueError(f"{tk.name} carries inner IPv{tk.inner}, not IPv{origin_family}")
    with TunnelLab(tk, port=port, workdir=workdir) as lab:
        origins = [peers.start_origins(t, family=origin_family, timeout=timeout)
                   for t in lab.tenants]
        with lab.capture(Path(pcap), timeout=timeout):
            proxies = [
                peers.start_haproxy(t, rs, origin_family=origin_family, timeout=timeout,
                                    source_port_base=SOURCE_PORT_BASE)
                for t in lab.tenants
            ]

            def drive(t: Tenant) -> list[ClientResult]:
                return [c for r in rs
                        for c in peers.drive_clients(t, r, connections, family=client_family)]

            # at once: identical inner connections of both tenants overlap in time
            with ThreadPoolExecutor(len(lab.tenants)) as pool:
                clients = list(pool.map(drive, lab.tenants))
            for hap, cs in zip(proxies, clients, strict=True):
                hap.wait_records(sum(c.error is None for c in cs), timeout=timeout)
            for t, orig, cs in zip(lab.tenants, origins, clients, strict=True):
                expected = sum(c.error is None for c in cs)
                with contextlib.suppress(peers.PeerError):
                    peers._wait_for(lambda o=orig, n=expected: len(o.records()) >= n, 2.0,
                                    f"origin log of tenant {t.name}", None, None)
            for hap in proxies:
                hap.stop()
            time.sleep(0.05)
        results = [
            TenantResult(t.name, t.ident, tk.tunnel_label(t.ident, origin_family),
                         dict(t.client_ips), hap.records(), cs, orig.lines())
            for t, hap, cs, orig in zip(lab.tenants, proxies, clients, origins, strict=True)
        ]
        namespaces = lab.namespaces
        pids = [p for t in lab.tenants for p in t.pids] + lab.underlay.pids
        used_workdir = lab.workdir
    return TunnelResult(Path(pcap), tk, port or tk.port or 0, results, namespaces, pids,
                        used_workdir)
