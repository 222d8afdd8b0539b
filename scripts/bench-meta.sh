#!/usr/bin/env bash
# Measures metadata operations on a fresh local cluster (release build) beside the same
# operations on the local file system, in one run: the figures BENCHMARKS.md quotes.
#   scripts/bench-meta.sh [THREADS] [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."

threads=${1:-16}
count=${2:-5000}
work=$(mktemp -d /tmp/arbor-bench.XXXXXX)
local_dir=${ARBOR_BENCH_LOCAL:-$work/local}
mkdir -p "$local_dir"

[ -n "${ARBOR_BENCH_NO_BUILD:-}" ] || cargo build --release --workspace --bins
bin=target/release
"$bin/arbor" dev --dir "$work/cluster" --metastore-port 29100 --namenode-port 28020 \
  >"$work/dev.log" 2>&1 &
dev=$!
trap 'kill -INT $dev 2>/dev/null; wait $dev 2>/dev/null; rm -rf "$work"' EXIT
export ARBOR_NAMENODE=127.0.0.1:28020,127.0.0.1:28021
for _ in $(seq 1 120); do
  "$bin/arbor" dfs -test -e / 2>/dev/null && break
  sleep 0.5
done

echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
for op in create mkdir stat list rename delete; do
  "$bin/arbor" bench meta --op "$op" --threads "$threads" --count "$count" --local "$local_dir"
done
