# Switchboard in a container: `docker build -t switchboard .`, then see packaging/README.md.
#
# Two stages: Rust's Debian image builds the release binary; the runtime is distroless's
# cc-debian12 (glibc and libgcc, as the binary needs, and no shell or package manager), running
# as its fixed non-root user 65532. static/ is compiled into the binary; the IVR folder is read
# at run time, from /etc/switchboard/ivr. The health check is the binary's own
# `switchboard healthcheck`, since the image has no curl.

FROM rust:1-slim-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# The dependencies first, in a layer that a change to Switchboard's own code reuses: the
# manifest and lock file with stand-in sources (Cargo.toml names the benches, so cargo wants a
# file for each; `cargo build` does not build them, and the stand-ins stay).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && sed -n 's/^name = "\([a-z_]*\)"$/\1/p' Cargo.toml | while read -r name; do \
           echo 'fn main() {}' > "benches/$name.rs"; \
       done \
    && cargo build --release --locked \
    && rm -r src
# Then Switchboard: its sources and what they include (the pages, the built-in IVR flow, the
# example configuration's workspace). COPY keeps the files' times, which may be older than the
# stand-ins' build: the touch makes cargo rebuild the crate.
COPY src src
COPY static static
COPY ivr ivr
COPY switchboard.toml ./
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && mkdir -p /out/data \
    && cp target/release/switchboard /out/switchboard

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="switchboard" \
      org.opencontainers.image.description="Self-hosted contact-center router" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/switchboard /usr/local/bin/switchboard
# The configuration's folder, the working directory: ./switchboard.toml (the documented example,
# all defaults; mount your own over it) and ./ivr, the shipped flows (mount your own folder
# over it). Both read-only for the server.
COPY switchboard.toml /etc/switchboard/switchboard.toml
COPY ivr /etc/switchboard/ivr
WORKDIR /etc/switchboard
# The data directory, owned by the server's user so that a new named volume is too.
COPY --from=builder --chown=65532:65532 /out/data/ /var/lib/switchboard/
VOLUME /var/lib/switchboard
# The environment wins over the file: listen on every address inside the container, keep the
# data in the volume.
ENV SWITCHBOARD_HTTP_LISTEN=0.0.0.0:8080 \
    SWITCHBOARD_STORE_DATA_DIR=/var/lib/switchboard
EXPOSE 8080
USER 65532:65532
# `healthcheck` reads the same configuration, so it asks 127.0.0.1 on the port listened on. The
# start period covers recovery (a snapshot and up to store.snapshot_every commands replayed).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/switchboard", "healthcheck"]
# SIGTERM (what `docker stop` sends) is a clean stop: requests in flight get
# http.shutdown_timeout (10 s) to finish, then the store is flushed. Give `docker stop` more
# than that: --time 30 (compose: stop_grace_period: 30s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve"]
