# Multi-stage build: compile with the full toolchain, run on slim Debian with only libpq.
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked || true
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin goliath

FROM debian:bookworm-slim
# postgresql gives the embedded default (a private cluster) when no DATABASE_URL is set.
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates curl postgresql \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/goliath goliath
COPY --from=build /src/target/release/goliath /usr/local/bin/goliath
USER goliath
WORKDIR /var/lib/goliath
ENV GOLIATH_BIND=0.0.0.0:8000 \
    GOLIATH_DATA_DIR=/var/lib/goliath/data \
    RUST_LOG=info
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
CMD ["goliath", "serve"]
