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
if ((${#need[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing: ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The Debian etcd-server package may start a system etcd; the tests use their own ports and
# data dirs, so it does not matter, but stop it when we can to free the machine.
if command -v service >/dev/null 2>&1; then service etcd stop >/dev/null 2>&1 || true; fi

# No `| head`: with pipefail, a writer killed by SIGPIPE after head exits fails the script.
etcd --version
etcdctl version

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
