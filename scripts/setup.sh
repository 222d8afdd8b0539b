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

# Project-local tools (gitignored): the object-store emulators the data-path tests start.
# The tests look for them at these paths (or at $ARBOR_MOTO_SERVER / $ARBOR_AZURITE_BLOB).
root=$(cd "$(dirname "$0")/.." && pwd)
tools=${ARBOR_TOOLS_DIR:-$root/.tools}
mkdir -p "$tools"

# --- FUSE (arbor mount): the fuse3 runtime provides fusermount3. -----------------------------
if ! command -v fusermount3 >/dev/null 2>&1; then
  apt_install fuse3
fi

# --- A headless browser for the status page's test: Debian's Chromium. ----------------------
if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium
fi

# --- S3 emulator: moto's server, from PyPI, in a venv of its own. ----------------------------
venv=$tools/venv
if [ ! -x "$venv/bin/moto_server" ]; then
  if ! command -v python3 >/dev/null 2>&1; then
    apt_install python3
  fi
  # Debian splits venv (and the pip it bootstraps) into python3-venv; a failed attempt leaves a
  # venv without pip behind, so start over after installing it.
  if ! python3 -m venv "$venv" >/dev/null 2>&1 || [ ! -x "$venv/bin/pip" ]; then
    rm -rf "$venv"
    py=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    apt_install python3-venv "python$py-venv" || apt_install python3-venv
    python3 -m venv "$venv"
  fi
  log "installing moto[server] into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
fi
log "S3 emulator: $venv/bin/moto_server ($("$venv/bin/python" -c 'import moto; print("moto", moto.__version__)'))"

# --- Azure Blob emulator: Azurite, from npm, in a node_modules of its own. --------------------
node_dir=$tools/node
if [ ! -x "$node_dir/node_modules/.bin/azurite-blob" ]; then
  if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    apt_install nodejs npm
  fi
  log "installing azurite into $node_dir"
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --no-audit --no-fund --loglevel=error azurite >/dev/null
fi
log "Azure emulator: $node_dir/node_modules/.bin/azurite-blob (azurite $(node -p "require('$node_dir/node_modules/azurite/package.json').version"))"

exit 0
