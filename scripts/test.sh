#!/usr/bin/env bash
# The project's test command: starts the S3-compatible server the cluster tests store in
# (SeaweedFS on 127.0.0.1, scripts/s3-server.sh), runs every test of the workspace, checks that
# the CUDA build still compiles (no GPU needed), and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'scripts/s3-server.sh stop' EXIT
eval "$(scripts/s3-server.sh start)"
export SLSG_TEST_S3=s3://slsg-tests
cargo test --workspace "$@"
cargo check -p slsg-coordinator --features cuda --all-targets
