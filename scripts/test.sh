#!/usr/bin/env bash
# Runs Arbor's whole test suite the way CI does: setup, build every binary (the integration
# tests start the real processes), then every test of the workspace. Exits with the tests'
# status.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
if [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

cargo build --workspace --bins

if cargo nextest --version >/dev/null 2>&1; then
  profile=default
  if [ "${CI:-}" = "true" ]; then
    profile=ci
  fi
  exec cargo nextest run --workspace --no-fail-fast --profile "$profile" "$@"
else
  echo "test.sh: cargo-nextest not found; running cargo test" >&2
  # Each integration test starts a whole cluster: two at a time on a small machine.
  export RUST_TEST_THREADS=${RUST_TEST_THREADS:-2}
  exec cargo test --workspace --no-fail-fast "$@"
fi
