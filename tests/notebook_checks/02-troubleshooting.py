# ruff: noqa: F821
"""Checks for notebooks/02-troubleshooting.ipynb, run in its kernel after its last cell.

tests/test_notebooks.py executes the notebook, then this file in the same kernel:
the names below are the notebook's. Every answer the notebook gives is held to
the recording (HAProxy's and the relay's logs, the clients' sockets, nginx's log).
"""

assert truth["trusted"] == TRUSTED
assert not a.errors

# 2. connections without a client address
assert keys(no_header) == recorded(expected.header == "none")
assert keys(with_code("client.missing")) == recorded(expected.header == "none")
assert keys(with_code("origin.closed_silently")) == recorded(
    (expected.header == "none") & (expected.reply_bytes == 0)
)
assert set(no_header.origin_port.astype(int)) == set(
    expected.loc[expected.header == "none", "origin_port"]
)

# 3. since when, and is the whole proxy broken?
assert len(no_header.egress_ip.astype(str).unique()) == 1
assert set(api.index.get_level_values("egress_ip")) == {culprit}
assert abs(first_bad - live_from) < pd.Timedelta("100ms"), (first_bad, live_from)
assert not f[(f.start < first_bad) & (f.method == "none")].shape[0]
assert {"ppv1"} <= set(same_box.loc[same_box.period == "before", "method"].astype(str))
assert {"ppv1", "none"} <= set(same_box.loc[same_box.period != "before", "method"].astype(str))

# 4. the origin rejects the headers
assert keys(rejected) == recorded(expected.reply_status == 400)
assert all(tcp_payload(int(p)).startswith(b"HTTP/1.1 400") for p in rejected.packet)
assert set(rejected.origin_port.astype(int)) == set(
    expected.loc[expected.reply_status == 400, "origin_port"]
)

# 5. someone else announces clients
assert keys(untrusted) == set(spoofed.index)
assert set(untrusted.egress_ip.astype(str)) == {truth["rogue_ip"]}
assert impersonated == set(spoofed.announced_ip)
# ... and the impersonated client is a real one, seen through the proxies too
assert impersonated <= set(expected.loc[expected.problem != "spoofed", "client_ip"])
assert set(believed.proxy_protocol_addr) == impersonated and set(believed.status) == {"200"}
assert "client.untrusted" not in set(naive.findings.code)
assert len(naive.flows) == len(f)

# 6. CRC32C
assert len(bad) and len(good)
assert (bad.stored != bad["as sent"]).all() and (bad.stored == bad["without unique_id"]).all()
assert (good.stored == good["as sent"]).all() and good.unique_id.isna().all()
# the relay's own log: which connections it gave a unique id, and which checksums it got wrong
assert keys(with_code("proxy.v2.crc32c_bad")) == recorded(expected.crc32c == "bad")
assert keys(with_crc[with_crc.crc32c == "ok"]) == recorded(expected.crc32c == "ok")
rec_uid = expected.loc[expected.unique_id.notna(), "unique_id"]
got_uid = with_crc.dropna(subset=["unique_id"]).set_index(["egress_ip", "egress_port"]).unique_id
assert {(str(i), int(p)): u for (i, p), u in got_uid.items()} == rec_uid.to_dict()
assert len(served) == len(crc_bad) and set(served.status) == {"200"}

# 7. the real clients
assert announced == real

# 8. the diagnosis
assert (verdict.diagnosis == verdict.problem).all(), verdict[verdict.diagnosis != verdict.problem]

# 9. which client made this request: nginx's log resolved against the capture
log_lines = truth["origin_log"]
assert len(access) == len(log_lines) and access.attrs["unparseable"] == 0
assert (access.match == "exact").all() and (access.candidates == 1).all()
# each record's flow is the connection from the egress address:port nginx logged
by_flow = f.set_index("flow").loc[access.flow.astype(int)]
assert (by_flow.egress_ip.astype(str).to_numpy() == access.remote_addr.to_numpy()).all()
assert (by_flow.egress_port.astype(int).to_numpy() == access.remote_port.astype(int).to_numpy()).all()
# ... and its client is the one the header announced (the peers' record), which nginx itself
# read where it listens with proxy_protocol ($proxy_protocol_addr:port, port 9001)
named = access[access.client_ip.notna()]
announced_by = expected.loc[list(zip(named.remote_addr, named.remote_port.astype(int), strict=True))]
assert (announced_by.announced_ip.to_numpy() == named.client_ip.to_numpy()).all()
assert (announced_by.announced_port.astype(int).to_numpy() == named.client_port.astype(int).to_numpy()).all()
nginx_read = {(r[2], r[3]): (r[4], r[5]) for r in (line.split("\t") for line in log_lines)}
with_pp = named[named.server_port == "9001"]
assert all(nginx_read[(r.remote_addr, r.remote_port)] == (r.client_ip, str(r.client_port))
           for r in with_pp.itertuples()) and len(with_pp) > 40
# no client: exactly lb2's connections whose checksum is bad (HAProxy's and the relay's logs)
unnamed = {(r.remote_addr, int(r.remote_port)) for r in access[access.client_ip.isna()].itertuples()}
assert unnamed == recorded(expected.crc32c == "bad")
# the 400s' users are the admin clients who really connected
assert set(access.loc[access.status == "400", "client_ip"]) == set(
    expected.loc[expected.reply_status == 400, "client_ip"])
# without the port: never a wrong client, and the candidates are the connections from that
# address open in the record's second (widened by the default 1 s when none), counted here
assert no_port.match.isin(["by-address", "ambiguous"]).all()
given = no_port.client_ip.notna()
assert (no_port.client_ip[given] == access.client_ip[given]).all() and given.any()
assert no_port.loc[no_port.match == "ambiguous", "client_ip"].isna().all()
logged_at = pd.to_datetime(access.time_local, format="%d/%b/%Y:%H:%M:%S %z").dt.tz_convert("UTC")


def open_then(ip, lo, hi):
    g = f[f.egress_ip.astype(str) == ip]
    return int(((g.start <= hi) & (g.end >= lo)).sum())


second = pd.Timedelta("1s")
counted = [open_then(ip, t, t + second) or open_then(ip, t - second, t + 2 * second)
           for ip, t in zip(access.remote_addr, logged_at, strict=True)]
assert no_port.candidates.tolist() == counted
assert ((no_port.match == "by-address") == (no_port.candidates == 1)).all()
