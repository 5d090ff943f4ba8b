#!/usr/bin/env bash
# Sets up pcapip from a fresh checkout: a virtualenv in .venv with the project
# installed (editable, with the test extras). With --system it first installs
# the system tools the tests drive for real (tshark, tcpdump, haproxy, nginx
# with its stream module, iproute2, tmux), which needs root or sudo.
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
        >/dev/null
fi

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
