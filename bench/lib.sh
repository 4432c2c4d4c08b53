# bench/lib.sh: what bench/compare.sh and bench/scale.sh share. Source it after setting BENCH_NAME
# (the tag of messages); it sources scripts/lib/pg.sh too.
#
#   say MSG...           a timestamped message on stderr
#   die MSG...           an error message on stderr, exit 1
#   stop_pid PID         TERM, up to 10 s, then KILL, and reap
#   need_deb PKG CMD     install Debian package PKG (as root) unless CMD is on PATH

bench=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench/.." && pwd)
. "$repo/scripts/lib/pg.sh"

say() { printf '[%s %s] %s\n' "${BENCH_NAME:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 1; }

stop_pid() {
    local pid=$1
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

apt_updated=0
need_deb() {
    command -v "$2" >/dev/null 2>&1 && return 0
    [[ $EUID -eq 0 ]] || die "$2 is missing: install the Debian package $1"
    if [[ $apt_updated == 0 ]]; then
        say "apt-get update"
        apt-get update -qq >/dev/null
        apt_updated=1
    fi
    say "installing $1"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
    command -v "$2" >/dev/null 2>&1 || die "$1 installed but $2 not found"
}

# Replaces the section "## HEADING" of the Markdown file FILE (up to the next "## " heading) with the text of
# CONTENT (a file that starts with that heading line), or appends it; bench/report.py keeps such sections when
# it rewrites docs/benchmarks.md.
replace_section() { # FILE HEADING CONTENT
    python3 - "$1" "$2" "$3" <<'PY'
import sys
from pathlib import Path
out, heading, section = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]).read_text().rstrip("\n").split("\n") + [""]
lines = out.read_text().splitlines() if out.exists() else []
if heading in lines:
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    lines[start:end] = section
else:
    lines += [""] + section
out.write_text("\n".join(lines).rstrip("\n") + "\n")
PY
}
