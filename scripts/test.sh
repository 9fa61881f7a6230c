#!/usr/bin/env bash
# Installs what the tests need (Debian/Ubuntu, as root or with sudo) and runs every check CI runs:
# formatting, clippy with warnings as errors, and the whole test suite (unit, property,
# end-to-end tests that drive the real etcdctl against retcd and real etcd, crash tests).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if ((${#need[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing: ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The python etcd3 client (crates/server/tests/python_etcd3.rs); 0.12 loads only with
# protobuf's pure-python implementation under current protobuf releases.
# (Debian 12+ marks the system python externally managed: then --break-system-packages.)
if ! PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python python3 -c 'import etcd3' >/dev/null 2>&1; then
    echo "installing: python etcd3"
    python3 -m pip install -q --disable-pip-version-check etcd3 >/dev/null 2>&1 ||
        python3 -m pip install -q --disable-pip-version-check --break-system-packages etcd3 >/dev/null
fi
# The Debian etcd-server package may start a system etcd; the tests use their own ports and
# data dirs, so it does not matter, but stop it when we can to free the machine.
if command -v service >/dev/null 2>&1; then service etcd stop >/dev/null 2>&1 || true; fi

# No `| head`: with pipefail, a writer killed by SIGPIPE after head exits fails the script.
etcd --version
etcdctl version

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast
