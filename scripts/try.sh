#!/usr/bin/env bash
# Builds Arbor, starts a local cluster (`arbor dev`), shows a few commands working against it,
# then keeps the cluster in the foreground until Ctrl-C. Data stays in $ARBOR_DEV_DIR
# (default ./arbor-dev), so running this again finds the same namespace.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${ARBOR_DEV_DIR:-./arbor-dev}
cargo build --workspace --bins
bin=target/debug
arbor() { "$bin/arbor" "$@"; }

"$bin/arbor" dev --dir "$dir" &
dev=$!
trap 'kill -INT $dev 2>/dev/null; wait $dev 2>/dev/null' EXIT INT TERM

# Wait until the first namenode answers.
for _ in $(seq 1 120); do
  if arbor dfs -test -e / 2>/dev/null; then break; fi
  sleep 0.5
done

show() { echo; echo "\$ arbor $*"; arbor "$@" || true; }
stamp=$(date +%s)
show dfs -mkdir -p "/demo-$stamp/logs" "/demo-$stamp/data"
show dfs -touchz "/demo-$stamp/logs/app.log"
show dfs -setfattr -n user.owner -v analytics "/demo-$stamp/data"
show dfs -mv "/demo-$stamp/logs/app.log" "/demo-$stamp/data/app.log"
head -c 3000000 /dev/urandom > "$dir/sample.bin"
show dfs -put "$dir/sample.bin" "/demo-$stamp/data/sample.bin"
echo "hello from arbor" | arbor dfs -put - "/demo-$stamp/data/hello.txt"
show dfs -cat "/demo-$stamp/data/hello.txt"
show dfs -get "/demo-$stamp/data/sample.bin" "$dir/sample.back"
cmp "$dir/sample.bin" "$dir/sample.back" && echo "(the 3 MB file came back identical)"
rm -f "$dir/sample.bin" "$dir/sample.back"
show dfs -ls -R "/demo-$stamp"
show dfs -getfattr -d "/demo-$stamp/data"
show dfs -count "/demo-$stamp"
show dfs -du -h "/demo-$stamp/data"
show dfs -df -h
show ec -getPolicy -path /
sleep 1
show search "xattr.owner=analytics"
show search "size>1M" --path "/demo-$stamp"
show fsck /
echo
echo "The cluster keeps running; try: target/debug/arbor dfs -ls /   (Ctrl-C here stops it)"
wait $dev
