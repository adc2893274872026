#!/usr/bin/env bash
# Client-compatibility suite: runs the real Python clients Mastodon.py and toot
# (from PyPI, pinned in tests/compat/requirements.txt) and the real JavaScript
# clients masto.js and megalodon (from npm, pinned in tests/compat/js/package-lock.json)
# against one real `starling serve`.
#
# Usage: bash tests/compat/run.sh [extra pytest args, e.g. -k toot -x]
#
# Environment:
#   COMPAT_SUITES     which side to run: all (default), py (pytest only) or js
#                     (node --test only; needs only Node >= 20.18 and npm)
#   COMPAT_NODE_ARGS  extra args for `node --test`, e.g. --test-name-pattern=media
#   STARLING_BIN      use this binary instead of building target/debug/starling
#   COMPAT_VENV       virtualenv location (default: <repo>/target/compat-venv)
#   PYTHON            interpreter used to create the venv (default: python3)
#   COMPAT_NPM_CACHE  npm cache for `npm ci` (default: <repo>/target/npm-cache)
#   READY_TIMEOUT     seconds to wait for GET /readyz (default: 30)
#   COMPAT_TARGET     run against this already-running server (e.g. the local
#                     cluster's load balancer) instead of starting one; it must
#                     run with rate limits off
#   COMPAT_EXPECT_CDN 1: media URLs must point at a CDN in front of the server
#                     (the local cluster's nginx), else test_media_cdn.py fails
#   COMPAT_CLUSTER_SCRIPT  the local cluster's scripts/cluster, with COMPAT_TARGET
#                     its load balancer: test_streaming_failover.py stops (and
#                     starts again) the api process holding its streams; skipped
#                     when unset
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
CALLER_PWD="$PWD"
cd "$REPO_ROOT"

log() { printf '[compat] %s\n' "$*" >&2; }

SUITES="${COMPAT_SUITES:-all}"
case "$SUITES" in
  all) RUN_PY=1; RUN_JS=1 ;;
  py)  RUN_PY=1; RUN_JS=0 ;;
  js)  RUN_PY=0; RUN_JS=1 ;;
  *) log "COMPAT_SUITES must be all, py or js (got '$SUITES')"; exit 2 ;;
esac
if [[ "$RUN_PY" -eq 0 && "$#" -gt 0 ]]; then
  log "COMPAT_SUITES=js: ignoring the pytest args: $*"
fi

# test_streaming_failover.py runs the cluster script from pytest (in the repo root).
if [[ -n "${COMPAT_CLUSTER_SCRIPT:-}" && "$COMPAT_CLUSTER_SCRIPT" != /* ]]; then
  export COMPAT_CLUSTER_SCRIPT="$CALLER_PWD/$COMPAT_CLUSTER_SCRIPT"
fi

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
if [[ "$RUN_PY" -eq 1 ]]; then
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
fi

# ---------------------------------------------------------------- node_modules
JS_DIR="$SCRIPT_DIR/js"
if [[ "$RUN_JS" -eq 1 ]]; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "node and npm are needed for the JavaScript clients (COMPAT_SUITES=py skips them)"
    exit 2
  fi
  if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 18) ? 0 : 1)'; then
    log "Node >= 20.18 is needed for the JavaScript clients (found $(node --version))"
    exit 2
  fi
  # `npm ci` only when package-lock.json changed since the last successful
  # install (npm ci empties node_modules first, so the stamp lives inside it).
  JS_STAMP="$JS_DIR/node_modules/.compat-package-lock.sha256"
  JS_WANT="$(sha256sum "$JS_DIR/package-lock.json" | cut -d' ' -f1)"
  if [[ ! -f "$JS_STAMP" || "$(cat "$JS_STAMP")" != "$JS_WANT" ]]; then
    log "installing $JS_DIR/package-lock.json (npm ci)"
    (cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error \
      --cache "${COMPAT_NPM_CACHE:-$REPO_ROOT/target/npm-cache}")
    echo "$JS_WANT" > "$JS_STAMP"
  fi
fi

# ---------------------------------------------------------------- suites
run_py_suite() {
  PYTHONDONTWRITEBYTECODE=1 "$PY" -m pytest -q -p no:cacheprovider "$SCRIPT_DIR" "$@"
}
run_js_suite() {
  # node --test runs every *.test.js under tests/compat/js (never node_modules).
  # --test-force-exit: megalodon's streaming keeps keep-alive timers (a ping
  # 10 s after connecting, then a check a minute later) that stop() leaves
  # running; the file's process would wait for them after its tests ended.
  # shellcheck disable=SC2086
  (cd "$JS_DIR" && node --test --test-force-exit --test-reporter=spec ${COMPAT_NODE_ARGS:-})
}
# Runs the selected suites against $STARLING_URL; the second runs even if the
# first failed, and the result fails if either did.
run_suites() {
  local py_status=0 js_status=0 summary=""
  export STARLING_URL
  if [[ "$RUN_PY" -eq 1 ]]; then
    log "pytest (Mastodon.py, toot) against $STARLING_URL"
    run_py_suite "$@" || py_status=$?
    summary="pytest exit $py_status"
  fi
  if [[ "$RUN_JS" -eq 1 ]]; then
    log "node --test (masto.js, megalodon) against $STARLING_URL"
    run_js_suite || js_status=$?
    summary="${summary:+$summary, }node --test exit $js_status"
  fi
  if [[ "$py_status" -ne 0 || "$js_status" -ne 0 ]]; then
    log "FAILED ($summary)"
    return 1
  fi
  log "ok ($summary)"
}

# ---------------------------------------------------------------- server
if [[ -n "${COMPAT_TARGET:-}" ]]; then
  log "running against $COMPAT_TARGET"
  STARLING_URL="${COMPAT_TARGET%/}"
  run_suites "$@"
  exit $?
fi
# The run's own small jobs (a free port, waiting for /readyz) use Python when
# the venv is there, else Node, so each side needs only its own runtime.
if [[ "$RUN_PY" -eq 1 ]]; then
  PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
else
  PORT="$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')"
fi
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
wait_ready_py() {
  "$PY" - "$URL/readyz" "$READY_TIMEOUT" "$SERVER_PID" <<'EOF'
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
}
wait_ready_node() {
  node - "$URL/readyz" "$READY_TIMEOUT" "$SERVER_PID" <<'EOF'
const [url, timeout, pid] = process.argv.slice(2);
const deadline = Date.now() + Number(timeout) * 1000;
(async () => {
  while (Date.now() < deadline) {
    try {
      process.kill(Number(pid), 0);
    } catch {
      console.error("server exited before becoming ready");
      process.exit(1);
    }
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (r.status === 200) process.exit(0);
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  console.error(`server not ready after ${timeout}s (${url})`);
  process.exit(1);
})();
EOF
}
if [[ "$RUN_PY" -eq 1 ]]; then WAIT_READY=wait_ready_py; else WAIT_READY=wait_ready_node; fi
if ! "$WAIT_READY"; then
  STATUS=1
  exit 1
fi
log "server ready"

# ---------------------------------------------------------------- tests
STARLING_URL="$URL"
set +e
run_suites "$@"
STATUS=$?
set -e
exit "$STATUS"
