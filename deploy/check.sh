#!/usr/bin/env bash
# shellcheck disable=SC2317  # the check functions below are called through run()
# deploy/check.sh: static checks of the deployment files, no Docker engine
# or systemd needed. Each check runs when its tool is installed and is
# reported as skipped otherwise:
#
#   - deploy/prometheus/prometheus.yml with the alerts/ rule files (promtool)
#   - alerts/alertmanager.example.yml, what the compose Alertmanager loads (amtool)
#   - deploy/docker-compose.yml, also with the workload profile (docker compose config)
#   - deploy/runbook-exporter.service (systemd-analyze verify, in a scratch root
#     holding a stand-in binary, since the real one is not installed)
#   - deploy/kubernetes/ builds as a kustomize base (kubectl kustomize)
#   - the shell scripts here (ShellCheck) and the Dockerfile (hadolint)
#
# Exits non-zero when a check that ran failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

failed=0
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

run() { # run NAME TOOL COMMAND...
    local name=$1 tool=$2
    shift 2
    if ! command -v "$tool" >/dev/null 2>&1 && ! { [[ $tool == docker-compose ]] && docker compose version >/dev/null 2>&1; }; then
        printf 'skip  %s (no %s)\n' "$name" "${tool/docker-compose/docker compose}"
        return
    fi
    if out=$("$@" 2>&1); then
        printf 'ok    %s\n' "$name"
    else
        printf 'FAIL  %s\n%s\n' "$name" "$out"
        failed=1
    fi
}

prometheus_config() {
    # The rule files are relative to the config's directory, as in the container.
    mkdir -p "$scratch/prometheus/rules"
    cp deploy/prometheus/prometheus.yml "$scratch/prometheus/"
    cp alerts/runbook-exporter.rules.yml alerts/runbook-exporter.records.yml "$scratch/prometheus/rules/"
    promtool check config "$scratch/prometheus/prometheus.yml"
}

compose_config() {
    docker compose -f deploy/docker-compose.yml config -q \
        && docker compose -f deploy/docker-compose.yml --profile workload config -q
}

systemd_unit() {
    local root=$scratch/root
    mkdir -p "$root/usr/local/bin" "$root/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
    printf '#!/bin/sh\n' >"$root/usr/local/bin/runbook-exporter"
    chmod 755 "$root/usr/local/bin/runbook-exporter"
    cp "$(type -P kill)" "$root/bin/kill"
    cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
    cp deploy/runbook-exporter.service "$root/etc/systemd/system/"
    local out
    out=$(systemd-analyze verify --root="$root" /etc/systemd/system/runbook-exporter.service 2>&1) || { echo "$out"; return 1; }
    # verify exits 0 on some warnings: treat any output as a failure.
    [[ -z $out ]] || { echo "$out"; return 1; }
}

run "prometheus.yml and rule files" promtool prometheus_config
run "alertmanager.example.yml" amtool amtool check-config alerts/alertmanager.example.yml
run "docker-compose.yml" docker-compose compose_config
run "runbook-exporter.service" systemd-analyze systemd_unit
run "kubernetes kustomize base" kubectl kubectl kustomize deploy/kubernetes
run "shell scripts" shellcheck shellcheck deploy/postgres/30-runbook-exporter.sh deploy/check.sh deploy/kubernetes/render.sh
run "Dockerfile" hadolint hadolint Dockerfile

exit "$failed"
