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
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.

# Keep in step with `rust-version` in Cargo.toml: the oldest toolchain the
# crate and its locked dependencies build with.
ARG RUST_VERSION=1.89

# --- build -------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS builder
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

# --- runtime -----------------------------------------------------------------
# debian:bookworm-slim rather than distroless/cc: the same glibc as the
# builder, and bash for the HEALTHCHECK below (distroless has no shell, so
# no health check could run there without a client built into the binary).
FROM debian:bookworm-slim

ARG REVISION=unknown
LABEL org.opencontainers.image.title="runbook-exporter" \
      org.opencontainers.image.description="Prometheus exporter for PostgreSQL driven by a YAML catalogue of runbook queries" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${REVISION}"

# ca-certificates: CA roots for TLS connections made by the process.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid/gid so that orchestrators can check runAsNonRoot and
# mounted secrets can be made readable to exactly this user.
RUN groupadd --system --gid 10001 runbook-exporter \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin runbook-exporter

COPY --from=builder /out/runbook-exporter /usr/local/bin/runbook-exporter
COPY --chmod=0644 queries.yaml /etc/runbook-exporter/queries.yaml

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
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "addr=${RUNBOOK_EXPORTER_WEB_LISTEN_ADDRESS:-:9432}; exec 3<>/dev/tcp/127.0.0.1/${addr##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r -t 4 _ status _ <&3 && case $status in 200|401) ;; *) exit 1 ;; esac"]

ENTRYPOINT ["/usr/local/bin/runbook-exporter", "--config.file", "/etc/runbook-exporter/queries.yaml"]
