#!/usr/bin/env bash
# Sets up pcapip from a fresh checkout: a virtualenv in .venv with the project
# installed (editable, with the test extras), then the ahead-of-time compiled
# kernels (pcapip/_kernels*.so, which spare every run numba's ~0.3 s start-up;
# building needs gcc, g++ and the Python headers). With --system it first
# installs those and the system tools the tests drive for real (tshark,
# tcpdump, haproxy, nginx with its stream module, iproute2, tmux; Open vSwitch and
# ethtool, whose userspace datapath sends the tunnels a kernel may lack; Prometheus, which
# scrapes pcapip live --metrics in the tests), which
# needs root or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--system" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends \
        tshark tcpdump haproxy nginx libnginx-mod-stream iproute2 tmux hyperfine \
        openvswitch-switch ethtool prometheus zstd lz4 \
        gcc g++ libc6-dev python3-dev \
        >/dev/null
fi

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# numba's pycc compiles the kernels; rerun this after changing a kernel (a stale
# module is ignored, the kernels then run on the numba JIT)
if ! .venv/bin/python -m pcapip.build_kernels; then
    # not fatal: pcapip runs the same kernels on numba's JIT (slower to start); the test
    # suite, with CI set, insists on the compiled module
    echo "setup: building the compiled kernels failed (the line above says why); pcapip will use numba's JIT." >&2
    echo "setup: fix what it names (gcc, g++ and the Python headers come with --system), then run" >&2
    echo "setup:   .venv/bin/python -m pcapip.build_kernels" >&2
fi
