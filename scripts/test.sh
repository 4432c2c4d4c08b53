#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and the integration
# tests that start their own PostgreSQL, promtool, amtool, Prometheus and
# Alertmanager. Installs the Debian packages it needs when run as root.
#
#   scripts/test.sh            # everything, against the Debian PostgreSQL
#   PG_BIN=/path/bin scripts/test.sh   # against other PostgreSQL binaries
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
if [ -z "${PG_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql postgresql-contrib)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages; install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  # Packages must not start their own services (Prometheus on :9090 and so on) on a test machine.
  policy_added=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d
fi

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --no-fail-fast
