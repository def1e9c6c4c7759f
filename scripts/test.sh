#!/usr/bin/env bash
# The project's test command: everything the tests need, then the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace "$@"
