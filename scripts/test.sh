#!/usr/bin/env bash
# The whole test suite: formatting, lints, supply chain, unit tests, and the
# integration tests (one binary, tests/it) that start their own PostgreSQL,
# promtool, amtool, Prometheus, Alertmanager, Chromium and podman; run against
# every PostgreSQL major of scripts/pg-versions.conf (every test on
# SYSTEM_MAJOR; on FULL_MAJORS every test but ONCE_TESTS, the ones that do not
# depend on the major; the catalogue and diagnostics tests on CATALOGUE_MAJORS).
# Installs the Debian packages it needs when run as root. Every step runs even
# when an earlier one failed; the script prints how long each step took, exits
# non-zero if any failed and lists them at the end.
#
#   scripts/test.sh                    # everything
#   PG_BIN=/path/bin scripts/test.sh   # the whole suite against other PostgreSQL binaries, then the matrix
#   TEST_MATRIX=0 scripts/test.sh      # without the matrix (only the first PostgreSQL)
#
# The PostgreSQL runs share one debug build (the build step; PG_BIN is read
# when the tests run) and run side by side in lanes, since they mostly wait:
# the major-dependent tests on SYSTEM_MAJOR, ONCE_TESTS on SYSTEM_MAJOR, one
# lane per full major; each lane's output is printed when all have finished.
# The matrix uses scripts/pg-binaries.sh (npm; cached in
# /var/cache/runbook-exporter/pg, so only the first run downloads).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# The version matrix (SYSTEM_MAJOR, FULL_MAJORS, CATALOGUE_MAJORS); the tests
# read the same file.
. scripts/pg-versions.conf

failures=()
timings=()
total_start=$SECONDS

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
command -v python3 >/dev/null || missing+=(python3)   # alerts/render.py renders the rules and dashboards (it::mixin, it::e2e)
command -v chromium >/dev/null || missing+=(chromium)   # the status-page test renders / in a real browser
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)   # cargo deb reads the binary's library dependencies with it (it::packaging)
# it::container builds and runs the image with podman (runc, cgroupfs), its base made with debootstrap.
for tool in podman runc debootstrap; do command -v $tool >/dev/null || missing+=($tool); done
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)   # the kubernetes-validate virtualenv below
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
  timings+=("$(printf '%5ss  %s' $((SECONDS - total_start)) "install ${missing[*]}")")
fi

# cargo-deb for the packaging test (it::packaging builds the .deb with it); from crates.io, pinned.
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
  install_start=$SECONDS
  cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION" || exit 1
  timings+=("$(printf '%5ss  %s' $((SECONDS - install_start)) "install cargo-deb $CARGO_DEB_VERSION")")
fi

# kubernetes-validate for it::kubernetes (the manifests against the Kubernetes schemas); from PyPI, pinned, in a
# virtualenv under target/ (tests/it/support/kubernetes.rs looks there).
KUBERNETES_VALIDATE_VERSION=1.37.0
kv=target/kubernetes-validate
if ! "$kv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE_VERSION"; then
  install_start=$SECONDS
  { python3 -m venv "$kv" && "$kv/bin/pip" install --quiet --disable-pip-version-check \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"; } || exit 1
  timings+=("$(printf '%5ss  %s' $((SECONDS - install_start)) "install kubernetes-validate $KUBERNETES_VALIDATE_VERSION")")
fi

# run NAME COMMAND...: runs one step, records its time and whether it failed.
run() {
  local name=$1 start=$SECONDS status
  shift
  printf '\n=== %s: %s\n' "$name" "$*" >&2
  "$@"
  status=$?
  timings+=("$(printf '%5ss  %s' $((SECONDS - start)) "$name")")
  if [ $status -ne 0 ]; then
    failures+=("$name (exit $status)")
    printf '=== %s: FAILED (exit %s)\n' "$name" "$status" >&2
  fi
}

# Extra arguments for the test binaries when PG_BIN lacks a tool a test needs:
# the npm packages ship only initdb, pg_ctl and postgres, and the real dump of
# it::backups needs pg_dump of the same major.
skips_for() {
  local bin=$1
  if [ ! -x "$bin/pg_dump" ]; then
    echo "note: $bin has no pg_dump: skipping backups::a_real_dump (needs pg_dump of the server's major)" >&2
    printf '%s\n' --skip backups::a_real_dump
  fi
}

# The unit tests of the library and the binary, and the library's doc tests.
unit_tests() {
  local status=0
  cargo test --no-fail-fast --lib --bins || status=$?
  cargo test --no-fail-fast --doc || status=$?
  return $status
}

# Lints, the supply chain and the unit tests: while the PostgreSQL lanes run (they mostly wait, and start
# the test binary directly, so cargo's lock is free), or alone when there is no test binary.
checks() {
  run clippy cargo clippy --all-targets -- -D warnings
  run "supply chain (cargo deny: advisories, licences, sources)" scripts/supply-chain.sh
  run "unit tests" unit_tests
}

run fmt cargo fmt --check
run "build (debug, every test target)" cargo test --no-run --lib --bins --test it

# The integration-test binary the build step made; the PostgreSQL runs below
# start it directly (cargo would serialise them on its lock), from the
# repository root as cargo does.
it_binary=$(cargo test --no-run --test it --message-format=json 2>/dev/null |
  sed -n 's/.*"target":{[^}]*"name":"it"[^}]*}.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)

# The PostgreSQL runs are mostly waiting (for servers to start, for
# Prometheus to scrape, for timeouts to pass), so they run in lanes side by
# side (see the lane plan below). Each lane's output goes to its own log, printed when all are done;
# its steps' times and failures come back through files.
lanes_dir=$(mktemp -d)
trap 'rm -rf "$lanes_dir"' EXIT

# lane_step LANE NAME COMMAND...: one step of a lane, run in that lane's background job.
lane_step() {
  local lane=$1 name=$2 start=$SECONDS status
  shift 2
  printf '\n=== %s: %s\n' "$name" "$*"
  "$@"
  status=$?
  printf '%5ss  %s\n' $((SECONDS - start)) "$name" >> "$lanes_dir/$lane.timings"
  if [ $status -ne 0 ]; then
    printf '%s (exit %s)\n' "$name" "$status" >> "$lanes_dir/$lane.failures"
    printf '=== %s: FAILED (exit %s)\n' "$name" "$status"
  fi
}

# it_run PG_BIN ARGS...: the integration tests against one PostgreSQL build.
it_run() {
  local bin=$1
  shift
  env PG_BIN="$bin" "$it_binary" "$@"
}

declare -A lane_steps=()   # lane number -> newline-separated "kind major"
lanes=0
add_lane_step() { # LANE KIND MAJOR
  lane_steps[$1]+="$2 $3"$'\n'
  [ "$1" -ge "$lanes" ] && lanes=$(($1 + 1))
}

if [ -z "$it_binary" ] || [ ! -x "$it_binary" ]; then
  failures+=("integration tests: the build step left no test binary")
  checks
else
  # Lane 0: every test that depends on the PostgreSQL major, on the system's (or PG_BIN's) PostgreSQL; one
  # lane per full major; one lane for the tests that do not (ONCE_TESTS), on the same PostgreSQL, the
  # longest; the short catalogue runs spread round robin over the other lanes.
  system=${PG_BIN:-$SYSTEM_MAJOR}
  add_lane_step 0 system "$system"
  lane=1
  if [ "${TEST_MATRIX:-1}" != 0 ]; then
    for major in $FULL_MAJORS; do
      add_lane_step $lane full "$major"
      lane=$((lane + 1))
    done
  fi
  once_lane=$lane
  add_lane_step $lane once "$system"
  if [ "${TEST_MATRIX:-1}" != 0 ]; then
    lane=0
    for major in $CATALOGUE_MAJORS; do
      add_lane_step $lane catalogue "$major"
      lane=$(( (lane + 1) % once_lane ))
    done
  fi

  once_skips=()
  for prefix in $ONCE_TESTS; do once_skips+=(--skip "$prefix"); done

  # system_bin MAJOR_OR_PATH: the bin directory of the system's PostgreSQL (or PG_BIN as given).
  system_bin() {
    if [ -n "${PG_BIN:-}" ]; then
      printf '%s\n' "$PG_BIN"
    elif [ -x "/usr/lib/postgresql/$1/bin/initdb" ]; then
      printf '%s\n' "/usr/lib/postgresql/$1/bin"
    else
      printf 'PostgreSQL %s (Debian): /usr/lib/postgresql/%s/bin/initdb not found; is SYSTEM_MAJOR in scripts/pg-versions.conf still Debian'"'"'s major?\n' \
        "$1" "$1" >&2
      return 1
    fi
  }

  run_lane() { # LANE
    local lane=$1 kind major bin name
    while read -r kind major; do
      [ -n "$kind" ] || continue
      case $kind in
        system | once)
          if ! bin=$(system_bin "$major" 2>> "$lanes_dir/$lane.failures"); then continue; fi
          name=${PG_BIN:+PG_BIN=$PG_BIN}
          name=${name:-PostgreSQL $major (Debian)}
          if [ "$kind" = system ]; then
            mapfile -t skips < <(skips_for "$bin")
            lane_step "$lane" "integration tests that depend on the PostgreSQL major, $name" \
              it_run "$bin" "${skips[@]}" "${once_skips[@]}"
          else
            # ONCE_TESTS are name prefixes; as filters, a test runs when its name contains any of them.
            # Three at a time: the flood and slowloris tests mostly wait, promtool mostly computes.
            # shellcheck disable=SC2086
            lane_step "$lane" "integration tests that do not depend on it (ONCE_TESTS), $name" \
              it_run "$bin" --test-threads 3 $ONCE_TESTS
          fi
          ;;
        full | catalogue)
          if ! bin=$(scripts/pg-binaries.sh "$major"); then
            printf 'PostgreSQL %s: scripts/pg-binaries.sh %s failed\n' "$major" "$major" >> "$lanes_dir/$lane.failures"
            continue
          fi
          if [ "$kind" = full ]; then
            mapfile -t skips < <(skips_for "$bin")
            lane_step "$lane" "integration tests that depend on the PostgreSQL major, PostgreSQL $major" \
              it_run "$bin" "${skips[@]}" "${once_skips[@]}"
          else
            lane_step "$lane" "catalogue and diagnostics tests, PostgreSQL $major" it_run "$bin" catalogue:: diagnostics::
          fi
          ;;
      esac
    done <<< "${lane_steps[$lane]}"
  }

  # The npm builds are fetched before the lanes start, so two lanes never download at once.
  if [ "${TEST_MATRIX:-1}" != 0 ]; then
    for major in $FULL_MAJORS $CATALOGUE_MAJORS; do
      scripts/pg-binaries.sh "$major" >/dev/null || true
    done
  fi
  lanes_start=$SECONDS
  pids=()
  for ((lane = 0; lane < lanes; lane++)); do
    run_lane "$lane" > "$lanes_dir/$lane.log" 2>&1 &
    pids+=($!)
  done
  checks
  for pid in "${pids[@]}"; do wait "$pid"; done
  for ((lane = 0; lane < lanes; lane++)); do
    printf '\n=== lane %s (PostgreSQL runs side by side) ===\n' "$lane" >&2
    cat "$lanes_dir/$lane.log" >&2
    [ -f "$lanes_dir/$lane.timings" ] && while IFS= read -r line; do timings+=("$line   (lane $lane)"); done < "$lanes_dir/$lane.timings"
    [ -f "$lanes_dir/$lane.failures" ] && while IFS= read -r line; do failures+=("$line"); done < "$lanes_dir/$lane.failures"
  done
  timings+=("$(printf '%5ss  %s' $((SECONDS - lanes_start)) "PostgreSQL runs, $lanes lane(s) side by side (wall clock)")")
fi

total=$((SECONDS - total_start))
printf '\n=== timings\n' >&2
printf '%s\n' "${timings[@]}" >&2
printf '%s\n' '  ---' >&2
printf '%5ss  total (%dm%02ds)\n' "$total" $((total / 60)) $((total % 60)) >&2
if [ ${#failures[@]} -gt 0 ]; then
  printf '\n=== %s step(s) failed:\n' "${#failures[@]}" >&2
  printf '  %s\n' "${failures[@]}" >&2
  exit 1
fi
printf '\n=== all steps passed\n' >&2
