# syntax=docker/dockerfile:1
# The slsg container images, both running the `slsg` binary as a non-root user:
#   docker build --target cpu  -t slsg:cpu .    Debian slim, Burn's CPU backend
#   docker build --target cuda -t slsg:cuda .   NVIDIA's CUDA 12.6 runtime with NVRTC, which
#                                               Burn's CUDA backend compiles its kernels with,
#                                               and the CUDA headers every kernel includes;
#                                               built with `--features cuda`
# The k8s/ overlays use these images. The build needs only crates.io, the base images and, for
# the CUDA image, Debian's LLVM packages (scripts/llvm.sh; no protoc, no CUDA toolkit in the
# build stage). The CUDA image needs an NVIDIA driver that
# supports CUDA 12.6 on the node (NVIDIA's table: 560 or newer).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
# The runtime, the headers' image and CUDARC_CUDA_VERSION below name one CUDA release (a test
# checks that they agree).
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-runtime-ubuntu24.04
ARG CUDA_HEADERS_IMAGE=nvidia/cuda:12.6.3-devel-ubuntu24.04

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS source
WORKDIR /src
COPY . .

FROM source AS build-cpu
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p slsg-coordinator --bin slsg \
    && install -m 0755 target/release/slsg /usr/local/bin/slsg

FROM source AS build-cuda
# Burn's CUDA backend links LLVM statically (CubeCL's PTX code generator): scripts/llvm.sh
# fetches Debian's LLVM 22 and checks it; building against it takes a C++ compiler and the
# libraries LLVM was built with.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl g++ libxml2-dev libz3-dev libzstd-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
# The CUDA API version the bindings are generated for: the runtime image's, not the newest the
# bindings know (there is no nvcc here to ask).
ENV CUDARC_CUDA_VERSION=12060
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    eval "$(SLSG_LLVM_DIR=/opt/llvm scripts/llvm.sh)" \
    && cargo build --release --locked -p slsg-coordinator --bin slsg --features cuda \
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

# Only its headers are used: NVRTC compiles each kernel against `cuda_runtime.h` and the headers
# it includes, which the runtime image lacks.
FROM ${CUDA_HEADERS_IMAGE} AS cuda-headers

FROM ${CUDA_IMAGE} AS cuda
COPY --from=cuda-headers /usr/local/cuda-12.6/targets/x86_64-linux/include /opt/cuda/include
ENV CUDA_PATH=/opt/cuda
# The libraries the statically linked LLVM calls (zlib and zstd are in the base image).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libxml2 libz3-4 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/slsg slsg
COPY --from=build-cuda /usr/local/bin/slsg /usr/local/bin/slsg
USER 10001:10001
WORKDIR /home/slsg
ENTRYPOINT ["/usr/local/bin/slsg"]
CMD ["--help"]
