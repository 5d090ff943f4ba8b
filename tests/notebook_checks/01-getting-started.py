# ruff: noqa: F821
"""Checks for notebooks/01-getting-started.ipynb, run in its kernel after its last cell.

tests/test_notebooks.py executes the notebook, then this file in the same kernel:
the names below are the notebook's. pcapip's answers against the ground truth
that the peers recorded when they made the capture.
"""

# Analyse a capture
assert truth["trusted"] == TRUSTED
assert not a.errors, a.errors  # damage met while reading would be listed here

# Flows: every recorded connection is exactly one flow, announcing the client it really carried
assert (joined["_merge"] == "both").all(), joined[joined["_merge"] != "both"]
assert len(flows) == len(expected)
assert (joined.header.map(method_of_header) == joined.method.astype(str)).all()
assert (announced.client_ip == announced.announced_ip).all()
assert (announced.client_port.astype(int) == announced.announced_port.astype(int)).all()
assert joined.loc[joined.announced_ip.isna(), "client_ip"].isna().all()
assert (joined.origin_port_real == joined.origin_port.astype(int)).all()

# Egress
pd.testing.assert_frame_equal(got.sort_index(), by_egress.sort_index(), check_names=False)

# Clients
assert got_paths.sort_index().to_dict() == expected_paths.sort_index().to_dict()
assert (a.clients.flows == a.clients.client_ip.map(expected.announced_ip.value_counts())).all()

# Findings: the connections built with a problem, and only those, carry a warning or an error
assert flagged == problem_flows, flagged ^ problem_flows

# The two plots show the recorded numbers
assert [b.get_width() for b in bars] == [by_egress.clients[ip] for ip in per_egress.index]
counts_by_method = expected.header.map(method_of_header).value_counts()
assert {m: len(r) for m, r in running.items()} == counts_by_method.to_dict()

# Exports: Parquet keeps the frame
pd.testing.assert_frame_equal(back, a.flows, check_categorical=False)
