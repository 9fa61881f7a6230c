#!/usr/bin/env bash
# Starts a 3-member retcd cluster on this machine (127.0.0.1, client ports 2379/22379/32379,
# peer ports 2380/22380/32380), data in ./cluster.retcd/<name>, logs in ./cluster.retcd/<name>.log.
# Stop it with: kill $(cat cluster.retcd/*.pid)
set -euo pipefail
cd "$(dirname "$0")/.."
RETCD=${RETCD:-target/release/retcd}
[ -x "$RETCD" ] || cargo build --release --bin retcd
DIR=${DIR:-cluster.retcd}
mkdir -p "$DIR"
CLUSTER="infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380"
for spec in infra1:2379:2380 infra2:22379:22380 infra3:32379:32380; do
    IFS=: read -r name client peer <<<"$spec"
    "$RETCD" --name "$name" --data-dir "$DIR/$name" \
        --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster-token retcd-cluster-1 --initial-cluster "$CLUSTER" --initial-cluster-state new \
        >"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
done
echo "started; try: etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 endpoint status -w table"
