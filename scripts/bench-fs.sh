#!/usr/bin/env bash
# Measures the mount beside a FUSE passthrough (bindfs over tmpfs) and tmpfs itself, in one
# run: `arbor bench fs` phases, then unpacking and comparing a source tree (a tar of
# /usr/include). The figures BENCHMARKS.md quotes for the mount.
#   scripts/bench-fs.sh [THREADS] [FILES] [SIZE]
#   ARBOR_BENCH_BIN=DIR: the binaries to measure (default: a release build of this tree)
set -euo pipefail
cd "$(dirname "$0")/.."

threads=${1:-2}
files=${2:-1000}
size=${3:-64M}
work=$(mktemp -d /tmp/arbor-bench-fs.XXXXXX)
shm=$(mktemp -d /dev/shm/arbor-bench-fs.XXXXXX)
mnt=$work/mnt
pass=$work/pass
mkdir -p "$mnt" "$pass" "$shm/plain" "$shm/under"

command -v bindfs >/dev/null || { apt-get update -qq && apt-get install -y -qq bindfs >/dev/null; }
# ARBOR_BENCH_BIN: measure binaries built elsewhere (a previous version) instead.
bin=${ARBOR_BENCH_BIN:-target/release}
[ -n "${ARBOR_BENCH_NO_BUILD:-}${ARBOR_BENCH_BIN:-}" ] || cargo build --release --workspace --bins
"$bin/arbor" dev --dir "$work/cluster" --metastore-port 29100 --namenode-port 28020 \
  >"$work/dev.log" 2>&1 &
dev=$!
cleanup() {
  umount -l "$mnt" 2>/dev/null || true
  umount -l "$pass" 2>/dev/null || true
  kill -INT $dev 2>/dev/null || true
  wait $dev 2>/dev/null || true
  rm -rf "$work" "$shm"
}
trap cleanup EXIT
export ARBOR_NAMENODE=127.0.0.1:28020,127.0.0.1:28021
for _ in $(seq 1 120); do
  "$bin/arbor" dfs -test -e / 2>/dev/null && break
  sleep 0.5
done
"$bin/arbor" mount "$mnt" -d
bindfs "$shm/under" "$pass"

tarball=$work/include.tar
tar cf "$tarball" -C /usr include
entries=$(tar tf "$tarball" | wc -l)

echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
for target in "$mnt" "$pass" "$shm/plain"; do
  echo "== $target"
  "$bin/arbor" bench fs --dir "$target" --threads "$threads" --files "$files" --size "$size"
done
for target in "$mnt" "$pass" "$shm/plain"; do
  mkdir -p "$target/tree"
  start=$(date +%s.%N)
  tar xf "$tarball" -C "$target/tree"
  mid=$(date +%s.%N)
  diff -r /usr/include "$target/tree/include" >/dev/null
  end=$(date +%s.%N)
  awk -v e="$entries" -v t="$target" -v a="$start" -v b="$mid" -v c="$end" \
    'BEGIN { printf "tar x of %d entries into %s: %.1f s; diff -r: %.1f s\n", e, t, b - a, c - b }'
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
