#!/usr/bin/env bash
# Side-by-side put throughput of a 3-member etcd (/usr/bin/etcd) and a 3-member retcd on
# this machine (fresh data dirs, 127.0.0.1 ports), with retcd-bench's put workload:
# 10 connections x 100 clients through all endpoints and leader-only, and 1 x 1 latency.
# Usage: scripts/bench-cluster.sh [TOTAL]   (default 50000 puts per row)
#        RETCD=path/to/retcd scripts/bench-cluster.sh ...   (another retcd binary)
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL=${1:-50000}
cargo build --release -q -p retcd-server -p retcd-bench
BENCH=target/release/retcd-bench
WORK=$(mktemp -d /tmp/retcd-bench-cluster.XXXXXX)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT

start_cluster() { # kind bin base_port
    local kind=$1 bin=$2 base=$3 ic="" i
    for i in 1 2 3; do ic+="${kind}$i=http://127.0.0.1:$((base + 10 + i)),"; done
    ic=${ic%,}
    for i in 1 2 3; do
        "$bin" --name "${kind}$i" --data-dir "$WORK/${kind}$i" \
            --listen-client-urls "http://127.0.0.1:$((base + i))" --advertise-client-urls "http://127.0.0.1:$((base + i))" \
            --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
            --initial-cluster "$ic" >"$WORK/${kind}$i.log" 2>&1 &
        echo $! >"$WORK/${kind}$i.pid"
    done
    for _ in $(seq 100); do
        ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$((base + 1))" put ready 1 >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "$kind cluster did not start" >&2
    exit 1
}

stop_cluster() {
    kill $(cat "$WORK/$1"*.pid) 2>/dev/null || true
    sleep 1
}

run() { # endpoints args...
    local eps=$1
    shift
    "$BENCH" put --endpoints "$eps" --json "$@" 2>/dev/null | tail -1
}

row() { # label json_etcd json_retcd
    python3 - "$@" <<'PY'
import json, sys
label, e, r = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
re, rr = e["requests_per_second"], r["requests_per_second"]
print(f"| {label} | {re:,.0f} | {rr:,.0f} | {rr / re:.2f}x | {e['latency_ms']['p50']:.2f} ms | {r['latency_ms']['p50']:.2f} ms | {e['latency_ms']['p99']:.2f} ms | {r['latency_ms']['p99']:.2f} ms |")
PY
}

declare -A res
for kind in etcd retcd; do
    if [ "$kind" = etcd ]; then bin=/usr/bin/etcd base=31000; else bin=${RETCD:-target/release/retcd} base=32000; fi
    start_cluster "$kind" "$bin" "$base"
    eps="127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))"
    res[$kind,all]=$(run "$eps" --conns 10 --clients 100 --total "$TOTAL" --key-space-size 100000 --val-size 256)
    res[$kind,leader]=$(run "$eps" --conns 10 --clients 100 --total "$TOTAL" --key-space-size 100000 --val-size 256 --target-leader)
    res[$kind,single]=$(run "$eps" --conns 1 --clients 1 --total 2000 --val-size 256 --target-leader)
    stop_cluster "$kind"
done
echo "| workload (3 members) | etcd req/s | retcd req/s | ratio | etcd p50 | retcd p50 | etcd p99 | retcd p99 |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|"
row "put 10×100, $TOTAL, all endpoints" "${res[etcd,all]}" "${res[retcd,all]}"
row "put 10×100, $TOTAL, leader only" "${res[etcd,leader]}" "${res[retcd,leader]}"
row "put 1×1, 2000, leader" "${res[etcd,single]}" "${res[retcd,single]}"
