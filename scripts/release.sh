#!/usr/bin/env bash
# Makes release X.Y.Z of runbook-exporter, everything but the upload:
#
#   1. checks: X.Y.Z is a version (docs/versioning.md), not older than Cargo.toml's, its tag
#      vX.Y.Z does not exist, CHANGELOG.md has an "Unreleased" section with entries, the work
#      tree is clean and on main (a dry run only warns about the last two);
#   2. the release commit: Cargo.toml's version set to X.Y.Z (and Cargo.lock), CHANGELOG.md's
#      "## [Unreleased]" renamed "## [X.Y.Z] - DATE" under a new empty "Unreleased", the image
#      tag of deploy/kubernetes/deployment.yaml set to X.Y.Z;
#   3. an annotated tag vX.Y.Z whose message is that changelog section;
#   4. the artifacts in target/dist/: the release binary as a tarball (with the catalogue,
#      deploy files and the kustomize base, the Dockerfile (`--build-arg BINARY=prebuilt` builds
#      the image from the tarball's binary), licence and docs), the .deb from `cargo deb`, and
#      SHA256SUMS.
#
# CI with network access runs it on main and then uploads (see the README, "Install"):
#   git push origin main vX.Y.Z && gh release create vX.Y.Z target/dist/* --notes-file target/dist/NOTES.md
#
#   scripts/release.sh X.Y.Z            # do it
#   scripts/release.sh --dry-run X.Y.Z  # run the checks, print every step and the new changelog
#                                       # heading; change, build and tag nothing
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1

dry_run=
if [ "${1:-}" = --dry-run ]; then
  dry_run=1
  shift
fi
if [ $# -ne 1 ]; then
  echo "usage: scripts/release.sh [--dry-run] X.Y.Z" >&2
  exit 2
fi
version=$1
tag="v$version"
date=$(date -u +%Y-%m-%d)

fail() {
  echo "release: $*" >&2
  exit 1
}
# step DESCRIPTION COMMAND...: runs the command, or in a dry run prints it.
step() {
  local what=$1
  shift
  if [ -n "$dry_run" ]; then
    printf 'would %s:\n   %s\n' "$what" "$*"
  else
    printf '=== %s\n' "$what" >&2
    "$@"
  fi
}

# ---- checks
[[ $version =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]] ||
  fail "$version is not a release version X.Y.Z (no pre-release or build suffix)"
current=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$current" ] || fail "no version in Cargo.toml"
newest=$(printf '%s\n%s\n' "$current" "$version" | sort -V | tail -n 1)
[ "$newest" = "$version" ] || fail "$version is older than Cargo.toml's $current"
if git rev-parse -q --verify "refs/tags/$tag" >/dev/null; then
  fail "tag $tag exists already"
fi
grep -q '^## \[Unreleased\]' CHANGELOG.md || fail "CHANGELOG.md has no '## [Unreleased]' section"
entries=$(awk '/^## \[Unreleased\]/ {on = 1; next} /^## \[/ {on = 0} on && /^- /' CHANGELOG.md | wc -l)
[ "$entries" -gt 0 ] || fail "CHANGELOG.md's Unreleased section has no entries: nothing to release"
problems=()
branch=$(git rev-parse --abbrev-ref HEAD)
[ "$branch" = main ] || problems+=("releases are made from main, this is $branch")
[ -z "$(git status --porcelain)" ] || problems+=("the work tree has uncommitted changes")
for problem in "${problems[@]}"; do
  [ -n "$dry_run" ] || fail "$problem"
  echo "warning: $problem (a real release stops here)" >&2
done
echo "release $version (Cargo.toml has $current; $entries changelog entries; $date)"

# ---- the release commit
section=$(awk '/^## \[Unreleased\]/ {on = 1; next} /^## \[/ {on = 0} on' CHANGELOG.md)
new_changelog=$(awk -v heading="## [$version] - $date" '
  /^## \[Unreleased\]/ && !done { print; print ""; print heading; done = 1; next }
  { print }' CHANGELOG.md)
if [ -n "$dry_run" ]; then
  echo "would rename the changelog section:"
  diff <(cat CHANGELOG.md) <(printf '%s\n' "$new_changelog") | sed -n 's/^[<>] /   &/p' || true
else
  printf '%s\n' "$new_changelog" > CHANGELOG.md
fi
step "set the version in Cargo.toml and Cargo.lock" \
  sed -i "0,/^version = \".*\"$/s//version = \"$version\"/" Cargo.toml
step "update Cargo.lock for the new version" cargo update --workspace --offline
step "set the image tag of deploy/kubernetes/deployment.yaml" \
  sed -i "s|^\( *image: runbook-exporter:\).*$|\1$version|" deploy/kubernetes/deployment.yaml
step "commit the release" git commit -q -m "Release $version" -- Cargo.toml Cargo.lock CHANGELOG.md deploy/kubernetes/deployment.yaml
if [ -z "$dry_run" ]; then
  mkdir -p target/dist
  printf '%s\n' "$section" > target/dist/NOTES.md
fi
step "tag $tag with the changelog section as its message" git tag -a "$tag" -F target/dist/NOTES.md

# ---- artifacts
arch=$(uname -m)
name="runbook-exporter-$version-$arch-linux"
step "build the release binary (fat LTO)" cargo build --release --locked
step "build the Debian package from it" cargo deb --no-build --locked --output target/dist/
step "stage the tarball's files" bash -c "rm -rf 'target/dist/$name' && mkdir -p 'target/dist/$name/deploy' &&
  cp target/release/runbook-exporter queries.yaml Dockerfile LICENSE README.md CHANGELOG.md 'target/dist/$name/' &&
  cp -r docs alerts dashboards 'target/dist/$name/' &&
  cp -r deploy/runbook-exporter.service deploy/runbook-exporter.env.example deploy/compat deploy/kubernetes 'target/dist/$name/deploy/'"
step "pack the tarball" tar -C target/dist -czf "target/dist/$name.tar.gz" "$name"
step "remove the staging directory" rm -rf "target/dist/$name"
step "write the checksums" bash -c "cd target/dist && sha256sum -- *.tar.gz *.deb > SHA256SUMS"
if [ -n "$dry_run" ]; then
  echo "dry run: nothing was changed, built or tagged"
else
  echo "release $version: commit and tag $tag made; upload target/dist/ (see the header of this script)"
  ls -l target/dist
fi
