#!/usr/bin/env bash
# statements.sh: what ranking pg_stat_statements without its query text saves, on a server with many
# statements. From anywhere:
#
#     bench/statements.sh                  # 5,000 statements
#     bench/statements.sh --statements 2000
#
# It starts a throwaway PostgreSQL (pg_stat_statements preloaded, pg_stat_statements.max above the count),
# runs N distinct statements of about 600 characters each, then times, as a pg_monitor role (psql \timing,
# median of 7 runs in one session after one untimed run): the shipped `pg_stat_statements` query, which ranks
# with pg_stat_statements(false); the same query reading pg_stat_statements(true) as a ranking with text
# would; and the shipped `pg_stat_statements_text` query, which reads the text file once to name the ranked
# statements (ttl 5m). It prints a Markdown table and replaces the section "## pg_stat_statements ranked
# without query text" of the output file (bench/report.py keeps that section).
#
# Options:
#   --statements N   distinct statements to create (default 5000)
#   --output FILE    the Markdown file whose section is replaced (default docs/benchmarks.md)
#
# PostgreSQL runs in a temporary directory on 127.0.0.1 only; everything started here is stopped on exit.
set -euo pipefail

BENCH_NAME=statements
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

statements=5000
output=$repo/docs/benchmarks.md
while [[ $# -gt 0 ]]; do
    case $1 in
        --statements) statements=$2; shift ;;
        --output) output=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (try --help)" ;;
    esac
    shift
done
[[ $statements =~ ^[1-9][0-9]*$ ]] || die "--statements wants a positive whole number"
pg_find_bin || die "no PostgreSQL server binaries: set PG_BIN"
pg_find_psql || die "no psql"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-statements.XXXXXX")
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    [[ -n $PG_PID ]] && pg_stop
    rm -rf -- "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "PostgreSQL ($("$PG_BIN/postgres" --version))"
pg_start "$tmp" -c shared_preload_libraries=pg_stat_statements -c "pg_stat_statements.max=$((statements + 1000))" \
    -c log_min_messages=warning || die "PostgreSQL did not start"
base=postgres://postgres@127.0.0.1:$PG_PORT/postgres
sql() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$base" -c "$1"; }
sql "CREATE EXTENSION pg_stat_statements; CREATE ROLE bench_statements LOGIN IN ROLE pg_monitor"

say "running $statements distinct statements"
# pg_stat_statements tells statements apart by their parsed shape (constants and aliases do not count): each
# one reads one of 100 tables and sums its column a different number of times, behind a long select list
# like an application's queries have.
python3 - "$statements" >"$tmp/statements.sql" <<'PY'
import sys
n = int(sys.argv[1])
tables = 100
for t in range(min(n, tables)):
    print(f"CREATE TABLE t{t} (g int); INSERT INTO t{t} VALUES (1), (2);")
pad = ", ".join(f"g + 1 AS c{i}" for i in range(40))
for i in range(n):
    terms = " + ".join(["g"] * (i // tables + 1))
    print(f"SELECT {pad}, {terms} AS total FROM t{i % tables} AS g;")
PY
"$PSQL" -X -q -o /dev/null -v ON_ERROR_STOP=1 -d "$base" -f "$tmp/statements.sql"
tracked=$(sql "SELECT count(*) FROM pg_stat_statements")
text_bytes=$(sql "SELECT sum(length(query)) FROM pg_stat_statements")

# The shipped queries, and the ranking as it would read with the text.
if ! python3 -c 'import yaml' 2>/dev/null; then
    [[ $EUID -eq 0 ]] || die "python3's yaml module is missing: install the Debian package python3-yaml"
    say "installing python3-yaml"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-yaml >/dev/null
fi
python3 - "$repo/queries.yaml" "$tmp" <<'PY'
import sys
from pathlib import Path
import yaml
queries = yaml.safe_load(Path(sys.argv[1]).read_text())["queries"]
out = Path(sys.argv[2])
ranking = queries["pg_stat_statements"]["sql"]
(out / "ranking.sql").write_text(ranking.rstrip() + ";\n")
(out / "ranking-with-text.sql").write_text(ranking.replace("pg_stat_statements(false)", "pg_stat_statements(true)").rstrip() + ";\n")
(out / "text.sql").write_text(queries["pg_stat_statements_text"]["sql"].rstrip() + ";\n")
PY
grep -q 'pg_stat_statements(true)' "$tmp/ranking-with-text.sql" || die "the shipped ranking no longer reads pg_stat_statements(false)"

runs=7
median_ms() { # file: median of $runs timings in one session, after one untimed run
    { cat "$1"; echo '\timing on'; for _ in $(seq 1 "$runs"); do cat "$1"; done; } \
        | "$PSQL" -X -q -o /dev/null -v ON_ERROR_STOP=1 -d "postgres://bench_statements@127.0.0.1:$PG_PORT/postgres" \
        | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -n | sed -n "$(((runs + 1) / 2))p"
}
ranking=$(median_ms "$tmp/ranking.sql")
with_text=$(median_ms "$tmp/ranking-with-text.sql")
texts=$(median_ms "$tmp/text.sql")
[[ -n $ranking && -n $with_text && -n $texts ]] || die "a timing failed"

run_note="Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs, $("$PG_BIN/postgres" --version), git $(cd "$repo" && git rev-parse --short HEAD), \`bench/statements.sh --statements $statements\`: $tracked statements tracked, $text_bytes bytes of query text; median of $runs runs each, as a \`pg_monitor\` role."
{
    printf '## pg_stat_statements ranked without query text\n\nMeasured by `bench/statements.sh` (see its header).\n\n%s\n\n' "$run_note"
    printf '| query | runs | median ms |\n|---|---|---|\n'
    printf '| `pg_stat_statements` as shipped: ranks with `pg_stat_statements(false)` | at most every 30 s (ttl 30s) | %s |\n' "$ranking"
    printf '| the same ranking reading `pg_stat_statements(true)` | (not shipped) | %s |\n' "$with_text"
    printf '| `pg_stat_statements_text` as shipped: the text of the ranked statements | at most every 5 minutes (ttl 5m) | %s |\n' "$texts"
} >"$tmp/section.md"
cat "$tmp/section.md"
replace_section "$output" "## pg_stat_statements ranked without query text" "$tmp/section.md"
say "wrote the pg_stat_statements section of $output"
