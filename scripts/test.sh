#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and the integration
# tests that start their own PostgreSQL, promtool, amtool, Prometheus and
# Alertmanager; then the same tests against the other PostgreSQL majors (the
# version matrix below). Installs the Debian packages it needs when run as
# root. Every step runs even when an earlier one failed; the script exits
# non-zero if any failed and lists them at the end.
#
#   scripts/test.sh                    # everything
#   PG_BIN=/path/bin scripts/test.sh   # the whole suite against other PostgreSQL binaries, then the matrix
#   TEST_MATRIX=0 scripts/test.sh      # without the matrix (only the first PostgreSQL)
#
# The matrix uses scripts/pg-binaries.sh (npm; cached in
# /var/cache/runbook-exporter/pg, so only the first run downloads). All runs
# share one debug build in target/: PG_BIN is read when the tests run, so
# switching it rebuilds nothing.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# The version matrix. README.md's "Supported PostgreSQL versions" table is
# generated from these three lines (tests/catalogue.rs reads them), so keep
# each on one line.
SYSTEM_MAJOR=15                # Debian bookworm's postgresql: the whole suite (unit and integration tests)
FULL_MAJORS="17"               # from npm: every integration test (cargo test --tests)
CATALOGUE_MAJORS="13 14 16"    # from npm: the catalogue tests (cargo test --test catalogue)

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
if [ -z "${PG_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql postgresql-contrib)
fi
if [ "${TEST_MATRIX:-1}" != 0 ] && ! command -v npm >/dev/null; then
  missing+=(npm)
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
  apt-get update -qq || exit 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || exit 1
  [ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d
fi

failures=()
timings=()
total_start=$SECONDS

# run NAME COMMAND...: runs one step, records its time and whether it failed.
run() {
  local name=$1 start=$SECONDS status
  shift
  printf '\n=== %s: %s\n' "$name" "$*" >&2
  "$@"
  status=$?
  timings+=("$(printf '%4ss  %s' $((SECONDS - start)) "$name")")
  if [ $status -ne 0 ]; then
    failures+=("$name (exit $status)")
    printf '=== %s: FAILED (exit %s)\n' "$name" "$status" >&2
  fi
}

# Extra arguments for the test binaries when PG_BIN lacks a tool a test needs:
# the npm packages ship only initdb, pg_ctl and postgres, and the streaming
# standby of tests/operations.rs needs pg_basebackup of the same major.
skips_for() {
  local bin=$1
  if [ ! -x "$bin/pg_basebackup" ]; then
    echo "note: $bin has no pg_basebackup: skipping several_targets_with_roles_and_probe (needs a standby)" >&2
    printf '%s\n' --skip several_targets_with_roles_and_probe
  fi
}

run fmt cargo fmt --check
run clippy cargo clippy --all-targets -- -D warnings

if [ -n "${PG_BIN:-}" ]; then
  run "whole suite, PG_BIN=$PG_BIN" cargo test --no-fail-fast
else
  system_bin=/usr/lib/postgresql/$SYSTEM_MAJOR/bin
  if [ -x "$system_bin/initdb" ]; then
    run "whole suite, PostgreSQL $SYSTEM_MAJOR (Debian)" env PG_BIN="$system_bin" cargo test --no-fail-fast
  else
    failures+=("PostgreSQL $SYSTEM_MAJOR (Debian): $system_bin/initdb not found; is SYSTEM_MAJOR in scripts/test.sh still Debian's major?")
  fi
fi

if [ "${TEST_MATRIX:-1}" != 0 ]; then
  for major in $FULL_MAJORS $CATALOGUE_MAJORS; do
    if ! bin=$(scripts/pg-binaries.sh "$major"); then
      failures+=("PostgreSQL $major: scripts/pg-binaries.sh $major failed")
      continue
    fi
    case " $FULL_MAJORS " in
      *" $major "*)
        mapfile -t skips < <(skips_for "$bin")
        run "integration tests, PostgreSQL $major" env PG_BIN="$bin" cargo test --tests --no-fail-fast -- "${skips[@]}"
        ;;
      *)
        run "catalogue tests, PostgreSQL $major" env PG_BIN="$bin" cargo test --test catalogue --no-fail-fast
        ;;
    esac
  done
fi

printf '\n=== timings (total %ss)\n' $((SECONDS - total_start)) >&2
printf '%s\n' "${timings[@]}" >&2
if [ ${#failures[@]} -gt 0 ]; then
  printf '\n=== %s step(s) failed:\n' "${#failures[@]}" >&2
  printf '  %s\n' "${failures[@]}" >&2
  exit 1
fi
printf '\n=== all steps passed\n' >&2
