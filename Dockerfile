# syntax=docker/dockerfile:1
#
# runbook-exporter container image.
#
#   docker build -t runbook-exporter .
#   docker run --rm -p 9432:9432 \
#     -e DATABASE_URL=postgres://runbook_exporter@db.example:5432/ignition \
#     -e DATABASE_PASSWORD_FILE=/run/secrets/db-password \
#     -v "$PWD/db-password:/run/secrets/db-password:ro" \
#     runbook-exporter
#
# The catalogue is baked in at /etc/runbook-exporter/queries.yaml; use your own
# by mounting over it (-v "$PWD/queries.yaml:/etc/runbook-exporter/queries.yaml:ro").
# Subcommands go after the image name: `docker run --rm ... runbook-exporter check`.
#
# Where the binary comes from (build argument BINARY):
#
#   BINARY=cargo     (default) `cargo build --release --locked` in the rust
#                    image. Needs BuildKit (the default builder since Docker
#                    23) or podman/buildah for the cache mounts.
#   BINARY=prebuilt  the file `runbook-exporter` at the root of the build
#                    context, built elsewhere for the runtime base's glibc
#                    (Debian 12 or older). No rust image and no network:
#                      cp target/release/runbook-exporter runbook-exporter
#                      docker build --build-arg BINARY=prebuilt -t runbook-exporter .
#                    The test suite (tests/it/container.rs) builds the image
#                    this way from its own binary, in a context holding only
#                    that binary and queries.yaml.
#
# The final image starts from an empty base (scratch) and holds only what
# the exporter and the HEALTHCHECK need, copied from RUNTIME_BASE (default
# debian:bookworm-slim; any glibc distribution with bash and ldd works):
#
#   /usr/local/bin/runbook-exporter       the exporter
#   /etc/runbook-exporter/queries.yaml    the shipped catalogue
#   libc, libm, libgcc_s, the loader      the exporter's libraries, as `ldd` lists them
#   /bin/bash, libtinfo                   the HEALTHCHECK (HTTP over bash's /dev/tcp)
#   /etc/passwd, /etc/group               uid/gid 10001 has a name
#   /etc/nsswitch.conf                    "hosts: files dns": /etc/hosts before DNS
#
# No CA certificates: the exporter trusts only the CA in the connection's
# sslrootcert= (mount it), never a system store. No package manager, no
# coreutils, no shell but bash.

# Keep in step with `rust-version` in Cargo.toml: the oldest toolchain the
# crate and its locked dependencies build with.
ARG RUST_VERSION=1.89
ARG RUNTIME_BASE=debian:bookworm-slim
ARG BINARY=cargo

# --- the binary, built here (BINARY=cargo) --------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS binary-cargo
WORKDIR /src

# Only what `cargo build` reads. benches/ is there because Cargo.toml declares
# a [[bench]] target, and cargo refuses a manifest whose targets are missing.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches ./benches

# --locked: build exactly the dependency versions in Cargo.lock, or fail.
# The registry and target/ are cache mounts, so a rebuild after a source
# change recompiles the crate, not its dependencies. The binary is copied out
# of the cache mount because mounts are not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
 && install -D -m 0755 target/release/runbook-exporter /out/runbook-exporter

# --- the binary, from the build context (BINARY=prebuilt) -----------------------
FROM scratch AS binary-prebuilt
COPY runbook-exporter /out/runbook-exporter

# --- the one chosen ---------------------------------------------------------------
# (A stage needs an instruction: podman 4.3's builder fails on a bare alias.)
FROM binary-${BINARY} AS binary
WORKDIR /out

# --- the runtime files, gathered from RUNTIME_BASE ------------------------------
FROM ${RUNTIME_BASE} AS rootfs
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=binary /out/runbook-exporter /rootfs/usr/local/bin/runbook-exporter
COPY queries.yaml /rootfs/etc/runbook-exporter/queries.yaml

# ldd lists what the loader maps: "libc.so.6 => /lib/.../libc.so.6 (0x...)"
# and the loader itself as "/lib64/ld-linux-x86-64.so.2 (0x...)". A library
# it cannot find ("not found") fails the build here, not the container later.
# Files are copied, symlinks resolved (cp -L), to the path the loader asks for.
RUN set -eu; \
    keep() { mkdir -p "/rootfs$(dirname "$1")"; cp -L "$1" "/rootfs$1"; }; \
    keep /bin/bash; \
    for exe in /rootfs/usr/local/bin/runbook-exporter /bin/bash; do \
      deps=$(ldd "$exe"); \
      if grep -q 'not found' <<<"$deps"; then echo "$exe: $deps" >&2; exit 1; fi; \
      for lib in $(awk '$3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$deps"); do keep "$lib"; done; \
    done; \
    printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' \
      'runbook-exporter:x:10001:10001:runbook-exporter:/nonexistent:/usr/sbin/nologin' > /rootfs/etc/passwd; \
    printf '%s\n' 'root:x:0:' 'runbook-exporter:x:10001:' > /rootfs/etc/group; \
    printf '%s\n' 'hosts: files dns' > /rootfs/etc/nsswitch.conf; \
    chown -R 0:0 /rootfs; \
    chmod -R u=rwX,go=rX /rootfs; \
    chmod 0755 /rootfs/usr/local/bin/runbook-exporter /rootfs/bin/bash

# --- runtime ------------------------------------------------------------------------
FROM scratch

ARG REVISION=unknown
LABEL org.opencontainers.image.title="runbook-exporter" \
      org.opencontainers.image.description="Prometheus exporter for PostgreSQL driven by a YAML catalogue of runbook queries" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${REVISION}"

COPY --from=rootfs /rootfs/ /

# A fixed numeric uid/gid so that orchestrators can check runAsNonRoot and
# mounted secrets can be made readable to exactly this user.
USER 10001:10001
EXPOSE 9432

# Liveness through /healthz with bash's /dev/tcp (the image has no curl or
# wget, and does not need them). It answers 200 while the process serves
# HTTP, whatever the database does: /readyz is the one that follows the
# database, and a container must not be restarted because PostgreSQL is down.
# 401 counts as alive too: with basic_auth_users in --web.config.file every
# path asks for credentials, and a health check must not hold any.
# The port is taken from RUNBOOK_EXPORTER_WEB_LISTEN_ADDRESS (default 9432):
# set the listen address through that variable, not the flag, if you change
# it. Plain HTTP only: with TLS in --web.config.file, turn it off
# (`docker run --no-healthcheck`, or `healthcheck: {disable: true}` in compose).
# OCI image manifests have no HEALTHCHECK: build with the Docker format
# (docker does; podman/buildah need `--format docker`).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/bin/bash", "-c", "addr=${RUNBOOK_EXPORTER_WEB_LISTEN_ADDRESS:-:9432}; exec 3<>/dev/tcp/127.0.0.1/${addr##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r -t 4 _ status _ <&3 && case $status in 200|401) ;; *) exit 1 ;; esac"]

ENTRYPOINT ["/usr/local/bin/runbook-exporter", "--config.file", "/etc/runbook-exporter/queries.yaml"]
