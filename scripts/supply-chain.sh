#!/usr/bin/env bash
# Supply-chain check: cargo deny (deny.toml) for advisories, licences, crate
# sources and duplicate versions, offline.
#
# Advisories come from a git bundle of the RustSec advisory database
# (ADVISORY_DB_BUNDLE, else ../shared/advisory-db.bundle next to the
# checkout), cloned into target/advisory-dbs where cargo deny looks for it;
# nothing is fetched from the advisory database's own server. Where a
# network exists, `cargo deny fetch` refreshes the database instead (README).
# Installs cargo-deny with `cargo install` when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q "$DENY_VERSION"; then
  echo "installing cargo-deny $DENY_VERSION (once)" >&2
  cargo install --locked --quiet cargo-deny --version "$DENY_VERSION"
fi

bundle=${ADVISORY_DB_BUNDLE:-}
if [ -z "$bundle" ]; then
  for candidate in ../shared/advisory-db.bundle /work/shared/advisory-db.bundle; do
    if [ -f "$candidate" ]; then bundle=$candidate; break; fi
  done
fi
export ADVISORY_DB_DIR=$PWD/target/advisory-dbs
mkdir -p "$ADVISORY_DB_DIR"

# cargo deny --offline reads crate metadata from the local registry cache: fill it first.
cargo fetch --quiet

deny() { cargo deny --offline check "$@"; }

# The database's directory name is cargo deny's own (derived from the database URL): learn it from
# the error of a first run without it, clone the bundle there, and run again.
if ! out=$(deny advisories 2>&1); then
  dir=$(printf '%s\n' "$out" | sed -n "s/.*cannot change to '\([^']*\)'.*/\1/p" | head -n 1)
  if [ -z "$dir" ]; then
    printf '%s\n' "$out" >&2
    exit 1
  fi
  if [ -z "$bundle" ] || [ ! -f "$bundle" ]; then
    echo "no advisory database: set ADVISORY_DB_BUNDLE to a git bundle of github.com/rustsec/advisory-db" >&2
    exit 1
  fi
  rm -rf "$dir"
  git clone --quiet "$bundle" "$dir"
  echo "advisory database from $bundle: $(git -C "$dir" log -1 --format='%h, %cs')" >&2
fi
deny advisories licenses sources bans
