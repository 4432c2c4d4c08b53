#!/usr/bin/env bash
# Coverage-guided fuzzing with cargo-fuzz (libFuzzer + AddressSanitizer).
# Needs a nightly toolchain (`cargo +nightly`), which a fresh CI machine does
# not have: CI runs the same properties with proptest on stable instead
# (`cargo test --test it fuzz::`). This script is for a developer machine.
#
#   scripts/fuzz.sh                      # every target for 60 s
#   FUZZ_SECONDS=600 scripts/fuzz.sh dsn # one target, longer
#   FUZZ_KEEP_GOING=1 scripts/fuzz.sh    # do not stop at the first crash (libFuzzer -fork=1 -ignore_crashes=1)
#
# A crash (a panic: a property in tests/it/support/fuzz_checks.rs failed) is
# copied to tests/fuzz-regressions/<target>/, where `cargo test --test it fuzz::`
# (regressions_replay) replays it on stable from then on. A summary line per
# target goes to target/fuzz-summary-<target>.tsv, which
# scripts/reliability-report.sh puts into docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
if [ $# -gt 0 ]; then targets=("$@"); else targets=(catalogue dsn decoders exposition); fi

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: needs a nightly toolchain (rustup toolchain install nightly); CI uses cargo test --test it fuzz:: instead" >&2
  exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Seed corpora from the repository (git-ignored, rebuilt every run).
mkdir -p fuzz/corpus/catalogue fuzz/corpus/dsn fuzz/corpus/decoders fuzz/corpus/exposition
cp queries.yaml tests/config/*.yaml tests/data/fuzz-seeds/*.yaml tests/data/catalogues/*.yaml fuzz/corpus/catalogue/
printf 'Zq-secret\0postgres://u:{PW}@db.example:5432/app?sslmode=disable' >fuzz/corpus/dsn/url
printf 'Zq-secret\0host=db user=u password={PW} dbname=app' >fuzz/corpus/dsn/kv
printf 'Zq-secret\0postgres://u@h/d?password={PW}' >fuzz/corpus/dsn/param
printf '\x00\x02\x00\x01\x00\x00\x00\x04\x30\x39\x16\x2e' >fuzz/corpus/decoders/numeric
printf '\x00\x00\x00\x00\x00\x0f\x42\x40\x00\x00\x00\x01\x00\x00\x00\x02' >fuzz/corpus/decoders/interval
printf 'help with \\ and "quotes"\x01value\nwith newline\x01"\x01\x01second\x01x' >fuzz/corpus/exposition/basic

cargo +nightly fuzz build 2>&1 | tail -n 3 >&2
mkdir -p target
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
status=0
for t in "${targets[@]}"; do
  log=target/fuzz-$t.log
  extra=()
  if [ -f "fuzz/$t.dict" ]; then extra+=("-dict=fuzz/$t.dict"); fi
  if [ -n "${FUZZ_KEEP_GOING:-}" ]; then extra+=(-fork=1 -ignore_crashes=1); fi
  echo "fuzz.sh: $t for ${seconds}s" >&2
  rm -rf "fuzz/artifacts/$t"
  start=$(date +%s)
  if cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 "${extra[@]}" >"$log" 2>&1; then
    result="no crash"
  else
    result="CRASH"
    status=1
  fi
  took=$(($(date +%s) - start))
  runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -n 1 || true)
  if [ -z "$runs" ]; then runs=$(grep -oE '^#[0-9]+' "$log" | tr -d '#' | sort -n | tail -n 1 || true); fi
  crashes=$( (find "fuzz/artifacts/$t" -name 'crash-*' 2>/dev/null || true) | wc -l)
  if [ "$crashes" -gt 0 ]; then result="CRASH ($crashes input(s))"; fi
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)
  mkdir -p "tests/fuzz-regressions/$t"
  for crash in fuzz/artifacts/"$t"/crash-* fuzz/artifacts/"$t"/oom-* fuzz/artifacts/"$t"/timeout-*; do
    [ -e "$crash" ] || continue
    # Keep only inputs that fail again when run alone (fork mode can leave inputs that do not).
    if "fuzz/target/$triple/release/$t" "$crash" >/dev/null 2>&1; then
      echo "fuzz.sh: $t: $crash does not fail when run alone; not kept" >&2
      continue
    fi
    cp "$crash" "tests/fuzz-regressions/$t/"
    echo "fuzz.sh: $t: kept $crash in tests/fuzz-regressions/$t/" >&2
    grep -m 3 -E 'panicked|Test failed|ERROR' "$log" >&2 || true
  done
  mode="stops at the first crash"
  if [ -n "${FUZZ_KEEP_GOING:-}" ]; then mode="keeps going after crashes (-fork=1 -ignore_crashes=1)"; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$took" "${runs:-?}" "$result" "${cov:-?}" "$mode" >"target/fuzz-summary-$t.tsv"
  echo "fuzz.sh: $t: $result after ${took}s, ${runs:-?} runs, ${cov:-?}" >&2
done
cat target/fuzz-summary-*.tsv
exit $status
