# ruff: noqa: F821
"""Checks for notebooks/00-your-capture.ipynb, run in its kernel after its last cell.

tests/test_notebooks.py executes the notebook, then this file in the same kernel:
the names below are the notebook's. Its tables and plots must be pcapip's answer
for the capture it was pointed at and account for every flow and finding; when
the capture has a recorded ground truth beside it (the bundled example does), the
egress table and the plots must match what the peers recorded.
"""

import json

fresh = pcapip.analyze(CAPTURE, trusted=TRUSTED)
pd.testing.assert_frame_equal(a.flows, fresh.flows)
pd.testing.assert_frame_equal(a.findings, fresh.findings)
assert not a.errors, a.errors

# the overview counts every flow once by method and once by status
assert sum(s[k] for k in s if k.startswith("method_")) == len(a.flows) == s["flows"]
assert sum(s[k] for k in s if k.startswith("status_")) == len(a.flows)

# the findings table covers every finding, each code once, each with its advice
assert int(summary["findings"].sum()) == len(a.findings)
assert sorted(summary.index.get_level_values("code")) == sorted(set(a.findings.code.astype(str)))
assert all(summary["what to try"]), "a finding code without advice in the catalogue"

# the egress table and both plots account for every flow
assert int(a.egress.flows.sum()) == len(a.flows)
assert [b.get_width() for b in bars] == per_egress.tolist()
assert sum(len(r) for r in running.values()) == len(a.flows)
red = {ip for ip, c in zip(per_egress.index, colors, strict=True) if c == "tab:red"}
untrusted = set(a.flows.egress_ip[a.flows.findings.str.contains("client.untrusted")].astype(str))
assert untrusted <= red

truth_file = CAPTURE.with_name(CAPTURE.stem + ".ground-truth.json")
if truth_file.exists():
    truth = json.loads(truth_file.read_text())
    expected = pd.DataFrame(truth["connections"])
    # a header whose CRC32C fails is invalid: it announces no client the origin may use
    expected.loc[expected.crc32c == "bad", ["announced_ip", "announced_port"]] = None
    assert len(a.flows) == len(expected)
    by_egress = expected.groupby("egress_ip").agg(
        flows=("egress_port", "size"), clients=("announced_ip", "nunique")
    )
    got = a.egress.set_index("egress_ip")[["flows", "clients"]].astype(int)
    pd.testing.assert_frame_equal(got.sort_index(), by_egress.sort_index(), check_names=False)
    method_of_header = {"v1": "ppv1", "v2": "ppv2", "none": "none"}
    counts = expected.header.map(method_of_header).value_counts().to_dict()
    assert {str(m): len(r) for m, r in running.items()} == counts
    if truth["trusted"] == TRUSTED:
        assert red == {truth["rogue_ip"]}
