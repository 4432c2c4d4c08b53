#!/bin/sh
# Render the rule files for one environment (the rules only; render.py also
# renders the promtool tests and the dashboards, see README.md).
#
#   RUNBOOK_BASE_URL=https://wiki.example.org/ops/runbook-database-operations \
#   EXPORTER_JOB=postgres-runbook \
#   alerts/render.sh /etc/prometheus/rules/runbook-exporter
#
# Writes runbook-exporter.rules.yml and runbook-exporter.records.yml into the
# output directory: `python3 alerts/render.py` with these variables as
# `--set` values over the defaults in alerts/mixin.json:
#
#   RUNBOOK_BASE_URL      runbook_base_url
#   DIAGNOSTICS_BASE_URL  diagnostics_base_url (default: next to the runbook)
#   EXPORTER_JOB          job
#
# For extra selectors, thresholds and the dashboards, write a configuration
# file and run `python3 alerts/render.py --config FILE OUT_DIR`.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: [RUNBOOK_BASE_URL=URL] [DIAGNOSTICS_BASE_URL=URL] [EXPORTER_JOB=JOB] $0 OUT_DIR" >&2
    exit 2
fi
out=$1
here=$(dirname "$0")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

set -- "$tmp"
if [ -n "${RUNBOOK_BASE_URL:-}" ]; then set -- --set "runbook_base_url=$RUNBOOK_BASE_URL" "$@"; fi
if [ -n "${DIAGNOSTICS_BASE_URL:-}" ]; then set -- --set "diagnostics_base_url=$DIAGNOSTICS_BASE_URL" "$@"; fi
if [ -n "${EXPORTER_JOB:-}" ]; then set -- --set "job=$EXPORTER_JOB" "$@"; fi
if ! python3 "$here/render.py" "$@" 2>"$tmp/errors"; then
    # Name the variable the value came from.
    sed -e 's/^render.py: --set: runbook_base_url:/render.sh: RUNBOOK_BASE_URL:/' \
        -e 's/^render.py: --set: diagnostics_base_url:/render.sh: DIAGNOSTICS_BASE_URL:/' \
        -e 's/^render.py: --set: job:/render.sh: EXPORTER_JOB:/' "$tmp/errors" >&2
    exit 2
fi

mkdir -p "$out"
for f in runbook-exporter.rules.yml runbook-exporter.records.yml; do
    cp "$tmp/alerts/$f" "$out/$f.tmp"
    mv "$out/$f.tmp" "$out/$f"
done
