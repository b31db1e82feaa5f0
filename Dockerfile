# syntax=docker/dockerfile:1
# Build:  docker build -t switchyard .
# Run:    docker run --rm -p 4000:4000 switchyard                      (demo config, simulated providers)
#         docker run --rm -p 4000:4000 -v $PWD/my.yaml:/etc/switchyard/config.yaml \
#             -e OPENAI_API_KEY switchyard serve --config /etc/switchyard/config.yaml

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so that editing our own code does not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --bin switchyard \
    && rm -rf src
# The bundled price table (config/prices.yaml) is compiled into the binary.
COPY config/prices.yaml ./config/prices.yaml
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin switchyard \
    && strip target/release/switchyard

# distroless/cc: glibc and libgcc only, no shell, runs as uid 65532. TLS roots are compiled into
# the binary (webpki-roots), so no CA bundle is needed.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/switchyard /usr/local/bin/switchyard
COPY config/demo.yaml config/example.yaml /etc/switchyard/
ENV SWITCHYARD_LISTEN=0.0.0.0:4000 \
    SWITCHYARD_CONFIG=/etc/switchyard/demo.yaml \
    SWITCHYARD_LOG_FORMAT=json
USER nonroot
EXPOSE 4000
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["serve"]
