#!/usr/bin/env bash
# Installs what Arbor's build and tests need on a fresh Debian machine (run as root, or as a user
# with sudo). Idempotent and quiet: anything already present is left alone, and a machine that
# has everything costs no network access. Works without a tty (CI=true, no stdin).
set -euo pipefail

RUST_TOOLCHAIN=${ARBOR_RUST_TOOLCHAIN:-1.95.0}

log() { echo "setup: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    log "need root to run: $*"
    return 1
  fi
}

apt_updated=0
# Installs the Debian packages among "$@" that are not installed yet.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing packages ${missing[*]} and no apt-get: install them by hand"
    return 1
  fi
  log "installing ${missing[*]}"
  if [ "$apt_updated" -eq 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# --- Build tools: a C compiler for crates with C parts. ----------------------------------------
# (gcc is enough for every native part we build; protoc comes vendored with the proto crate.)
if ! command -v cc >/dev/null 2>&1; then
  apt_install gcc libc6-dev
fi

# --- The Rust toolchain. -----------------------------------------------------------------------
if [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
  log "cargo not found: Arbor builds with the Rust toolchain ($RUST_TOOLCHAIN or newer); install it first"
  exit 1
fi

# cargo-nextest runs the suite when present (scripts/test.sh falls back to `cargo test`).

# --- FUSE (arbor mount): the fuse3 runtime package goes here. ------------------------------
# --- S3 emulator (object-store block servers): moto[server] from PyPI goes here. -----------
# --- Azure Blob emulator: azurite from npm goes here. --------------------------------------

exit 0
