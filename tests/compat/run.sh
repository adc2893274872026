#!/usr/bin/env bash
# Client-compatibility suite: runs the real Mastodon.py and toot clients (from PyPI,
# pinned in tests/compat/requirements.txt) against a real `starling serve`.
#
# Usage: bash tests/compat/run.sh [extra pytest args, e.g. -k toot -x]
#
# Environment:
#   STARLING_BIN      use this binary instead of building target/debug/starling
#   COMPAT_VENV       virtualenv location (default: <repo>/target/compat-venv)
#   PYTHON            interpreter used to create the venv (default: python3)
#   READY_TIMEOUT     seconds to wait for GET /readyz (default: 30)
#   COMPAT_TARGET     run against this already-running server (e.g. the local
#                     cluster's load balancer) instead of starting one; it must
#                     run with rate limits off
#   COMPAT_EXPECT_CDN 1: media URLs must point at a CDN in front of the server
#                     (the local cluster's nginx), else test_media_cdn.py fails
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
CALLER_PWD="$PWD"
cd "$REPO_ROOT"

log() { printf '[compat] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- binary
if [[ -n "${COMPAT_TARGET:-}" ]]; then
  BIN=""
elif [[ -n "${STARLING_BIN:-}" ]]; then
  BIN="$STARLING_BIN"
  [[ "$BIN" == /* ]] || BIN="$CALLER_PWD/$BIN"   # relative to where run.sh was invoked
else
  log "building starling (cargo build -p starling)"
  cargo build -p starling
  BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/starling"
fi
if [[ -z "${COMPAT_TARGET:-}" && ! -x "$BIN" ]]; then
  log "starling binary not found or not executable: $BIN"
  exit 2
fi

# ---------------------------------------------------------------- venv
VENV="${COMPAT_VENV:-$REPO_ROOT/target/compat-venv}"
REQS="$SCRIPT_DIR/requirements.txt"
PY="$VENV/bin/python"
if [[ ! -x "$PY" ]]; then
  log "creating virtualenv $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
fi
# Reinstall only when requirements.txt changed since the last successful install.
STAMP="$VENV/.compat-requirements.sha256"
WANT="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
  log "installing $REQS"
  "$PY" -m pip install --disable-pip-version-check -q -r "$REQS"
  echo "$WANT" > "$STAMP"
fi

# ---------------------------------------------------------------- server
if [[ -n "${COMPAT_TARGET:-}" ]]; then
  log "running against $COMPAT_TARGET"
  export STARLING_URL="${COMPAT_TARGET%/}"
  export PYTHONDONTWRITEBYTECODE=1
  exec "$PY" -m pytest -q -p no:cacheprovider "$SCRIPT_DIR" "$@"
fi
PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
URL="http://127.0.0.1:$PORT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/starling-compat.XXXXXX")"
DATA="$TMP/data"
SERVER_LOG="$TMP/server.log"
mkdir -p "$DATA"

SERVER_PID=""
STATUS=1
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ "$STATUS" -ne 0 ]]; then
    if [[ -f "$SERVER_LOG" ]]; then
      log "---- last 80 lines of the server log ($SERVER_LOG) ----"
      tail -n 80 "$SERVER_LOG" >&2 || true
      log "---- end of server log; temp dir kept: $TMP ----"
    fi
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting $BIN serve on $URL (data dir $DATA)"
STARLING_RATE_LIMITS__ENABLED=false RUST_LOG="${RUST_LOG:-info}" \
  "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --public-url "$URL" \
  >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

READY_TIMEOUT="${READY_TIMEOUT:-30}"
if ! "$PY" - "$URL/readyz" "$READY_TIMEOUT" "$SERVER_PID" <<'EOF'
import os, sys, time, urllib.request
url, timeout, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("server exited before becoming ready")
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
sys.exit(f"server not ready after {timeout:.0f}s ({url})")
EOF
then
  STATUS=1
  exit 1
fi
log "server ready"

# ---------------------------------------------------------------- tests
export STARLING_URL="$URL"
export PYTHONDONTWRITEBYTECODE=1
set +e
"$PY" -m pytest -q -p no:cacheprovider "$SCRIPT_DIR" "$@"
STATUS=$?
set -e
exit "$STATUS"
