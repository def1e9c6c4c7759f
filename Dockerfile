# syntax=docker/dockerfile:1
# The slsg container images, both running the `slsg` binary as a non-root user:
#   docker build --target cpu  -t slsg:cpu .    Debian slim, Burn's CPU backend
#   docker build --target cuda -t slsg:cuda .   NVIDIA's CUDA runtime (with NVRTC, which Burn's
#                                               CUDA backend compiles its kernels with), built
#                                               with `--features cuda`
# The k8s/ overlays use these tags. The build needs only crates.io (no protoc, no CUDA toolkit).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-runtime-ubuntu24.04

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS source
WORKDIR /src
COPY . .

FROM source AS build-cpu
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p slsg-coordinator --bin slsg \
    && install -m 0755 target/release/slsg /usr/local/bin/slsg

FROM source AS build-cuda
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p slsg-coordinator --bin slsg --features cuda \
    && install -m 0755 target/release/slsg /usr/local/bin/slsg

FROM debian:${DEBIAN_RELEASE}-slim AS cpu
# Certificates for https object stores; the versions follow the Debian release's updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/slsg slsg
COPY --from=build-cpu /usr/local/bin/slsg /usr/local/bin/slsg
USER 10001:10001
WORKDIR /home/slsg
ENTRYPOINT ["/usr/local/bin/slsg"]
CMD ["--help"]

FROM ${CUDA_IMAGE} AS cuda
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/slsg slsg
COPY --from=build-cuda /usr/local/bin/slsg /usr/local/bin/slsg
USER 10001:10001
WORKDIR /home/slsg
ENTRYPOINT ["/usr/local/bin/slsg"]
CMD ["--help"]
