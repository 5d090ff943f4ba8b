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
