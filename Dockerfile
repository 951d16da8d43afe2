# Multi-stage build: compile with the full toolchain, run on slim Debian with only libpq.
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
# Dependencies first, so source edits do not rebuild them: a stub of every target the
# manifest names builds them (and fails the build if it cannot).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/integration \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs tests/integration/main.rs \
    && cargo build --release --locked
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin goliath \
    && strip --strip-debug target/release/goliath

FROM debian:bookworm-slim
# postgresql gives the embedded default (a private cluster) when no DATABASE_URL is set.
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates curl postgresql \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 goliath \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /var/lib/goliath goliath \
    && mkdir -p /var/lib/goliath/data && chown -R 10001:10001 /var/lib/goliath
COPY --from=build /src/target/release/goliath /usr/local/bin/goliath
USER 10001:10001
WORKDIR /var/lib/goliath
ENV GOLIATH_BIND=0.0.0.0:8000 \
    GOLIATH_DATA_DIR=/var/lib/goliath/data \
    RUST_LOG=info
VOLUME /var/lib/goliath/data
EXPOSE 8000
# The port follows GOLIATH_BIND, so a deploy that moves it keeps a true health check.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${GOLIATH_BIND##*:}/readyz" || exit 1
CMD ["goliath", "serve"]
