#!/bin/sh
# Side-by-side benchmark of real etcd and retcd on this machine (see docs/benchmarks.md).
# Builds release binaries of retcd and retcd-bench, then runs `retcd-bench compare`.
# Extra arguments go to `compare`, e.g. --quick, --rows put,range, --out table.md.
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p retcd-server -p retcd-bench
exec target/release/retcd-bench compare --retcd target/release/retcd --etcd "${ETCD:-/usr/bin/etcd}" "$@"
