#!/bin/sh
# Render the rule files for one environment.
#
#   RUNBOOK_BASE_URL=https://wiki.example.org/ops/runbook-database-operations \
#   EXPORTER_JOB=postgres-runbook \
#   alerts/render.sh /etc/prometheus/rules/runbook-exporter
#
# Writes runbook-exporter.rules.yml and runbook-exporter.records.yml into the
# output directory. The shipped rules file is this script's output for the
# defaults below; those two defaults are the only values it rewrites:
#
#   RUNBOOK_BASE_URL  where the runbook is published; every runbook_url is
#                     this plus "#section-anchor" (GitHub-style anchors:
#                     lower case, spaces as "-", e.g. #lock-contention).
#   EXPORTER_JOB      the Prometheus scrape job of runbook-exporter, used by
#                     ExporterDown and ExporterAbsent.
#
# Check the result with `promtool check rules OUT_DIR/*.yml`.
set -eu

DEFAULT_RUNBOOK_BASE_URL='https://runbooks.example.com/runbook-database-operations'
DEFAULT_EXPORTER_JOB='runbook-exporter'

if [ $# -ne 1 ]; then
    echo "usage: [RUNBOOK_BASE_URL=URL] [EXPORTER_JOB=JOB] $0 OUT_DIR" >&2
    exit 2
fi

base=${RUNBOOK_BASE_URL:-$DEFAULT_RUNBOOK_BASE_URL}
job=${EXPORTER_JOB:-$DEFAULT_EXPORTER_JOB}
base=${base%/}

# Both values end up inside a sed replacement and a double-quoted YAML
# string: refuse the characters that would break either.
case $base in
    *'|'* | *'&'* | *'\'* | *'"'* | *' '* | *'#'*)
        echo "$0: RUNBOOK_BASE_URL must not contain | & \\ \" # or spaces: $base" >&2
        exit 2 ;;
    http://* | https://*) ;;
    *)
        echo "$0: RUNBOOK_BASE_URL must start with http:// or https://: $base" >&2
        exit 2 ;;
esac
case $job in
    '' | *[!A-Za-z0-9_.:-]*)
        echo "$0: EXPORTER_JOB may hold only letters, digits and _ . : -: $job" >&2
        exit 2 ;;
esac

here=$(dirname "$0")
out=$1
mkdir -p "$out"

sed -e "s|runbook_url: \"$DEFAULT_RUNBOOK_BASE_URL#|runbook_url: \"$base#|" \
    -e "s|job=\"$DEFAULT_EXPORTER_JOB\"|job=\"$job\"|g" \
    "$here/runbook-exporter.rules.yml" > "$out/runbook-exporter.rules.yml.tmp"
mv "$out/runbook-exporter.rules.yml.tmp" "$out/runbook-exporter.rules.yml"
cp "$here/runbook-exporter.records.yml" "$out/runbook-exporter.records.yml"
