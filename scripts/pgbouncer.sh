#!/usr/bin/env bash
# PgBouncer for Starling's tests and local cluster: a pinned release built
# from Debian's source archive (bookworm's package is 1.18, which cannot keep
# prepared statements in transaction pooling mode; 1.21 and later can).
#
#   scripts/pgbouncer.sh ensure       build it once (installing the build
#                                     dependencies with apt-get when missing)
#                                     into target/tools/pgbouncer-<version>/;
#                                     prints the binary's path
#   scripts/pgbouncer.sh settings     prints the [pgbouncer] settings Starling
#                                     needs (transaction pooling, prepared
#                                     statements, startup parameters): the
#                                     tested ones, for other configurations
#                                     to include
#   scripts/pgbouncer.sh start-test   starts the PgBouncer the store's tests
#                                     use (STARLING_TEST_PGBOUNCER_URL), in
#                                     front of the tests' PostgreSQL; prints
#                                     its URL (last line). Nothing is started
#                                     if it already runs.
#   scripts/pgbouncer.sh stop-test    stops it
#   scripts/pgbouncer.sh status-test  whether it runs
#
# Environment (start-test):
#   STARLING_TEST_PGBOUNCER_PORT  its port (default 6432)
#   STARLING_TEST_POSTGRES_URL    the PostgreSQL it pools (default
#                                 postgres://postgres@127.0.0.1:5432/postgres)
#   PGBOUNCER_POOL_SIZE           server connections per database and user
#                                 (default 3: the tests' stores have 4
#                                 connections a pool, so clients share them)
#   PGBOUNCER_MAX_PREPARED_STATEMENTS  default 200; 0 shows what PgBouncer
#                                 before 1.21 does to Starling (it breaks)
# Its configuration, pid file and log are in target/pgbouncer-test/.
set -euo pipefail

VERSION=1.24.1
TARBALL="pgbouncer_$VERSION.orig.tar.gz"
# Debian trixie's source package (its Sources index gives this digest).
URL="http://deb.debian.org/debian/pool/main/p/pgbouncer/$TARBALL"
SHA256=da72a3aba13072876d055a3e58dd4aba4a5de4ed6148e73033185245598fd3e0

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$REPO/target/tools"
PREFIX="$TOOLS/pgbouncer-$VERSION"
BIN="$PREFIX/bin/pgbouncer"
TEST_DIR="$REPO/target/pgbouncer-test"
TEST_PORT="${STARLING_TEST_PGBOUNCER_PORT:-6432}"

log() { printf '[pgbouncer] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

port_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
  command -v apt-get >/dev/null || die "$* missing and no apt-get to install it"
  log "installing $* from Debian's packages"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# ------------------------------------------------------------------ build
build_deps() {
  local missing=()
  command -v gcc >/dev/null || missing+=(gcc libc6-dev)
  command -v make >/dev/null || missing+=(make)
  command -v curl >/dev/null || missing+=(curl)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  if command -v pkg-config >/dev/null; then
    pkg-config --exists libevent || missing+=(libevent-dev)
    pkg-config --exists openssl || missing+=(libssl-dev)
  else
    missing+=(libevent-dev libssl-dev)
  fi
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

built() { [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -q "PgBouncer $VERSION"; }

ensure() {
  if built; then echo "$BIN"; return 0; fi
  mkdir -p "$TOOLS"
  # One build at a time (CI and `scripts/cluster up` may both ask).
  exec 9>"$TOOLS/pgbouncer.lock"
  flock 9
  if built; then echo "$BIN"; return 0; fi
  build_deps
  local work="$TOOLS/pgbouncer-build.$$"
  rm -rf "$work"; mkdir -p "$work"
  log "downloading $URL"
  curl -fsSL --retry 3 -o "$work/$TARBALL" "$URL"
  echo "$SHA256  $work/$TARBALL" | sha256sum -c --quiet - \
    || die "checksum mismatch for $TARBALL (expected $SHA256)"
  tar -xzf "$work/$TARBALL" -C "$work"
  log "building PgBouncer $VERSION (without c-ares: the libc resolver is enough on loopback)"
  (
    cd "$work/pgbouncer-$VERSION"
    ./configure --prefix="$PREFIX" --without-cares --with-openssl >"$work/configure.log" 2>&1 \
      || { tail -n 30 "$work/configure.log" >&2; exit 1; }
    # Only the binary: the manual pages would need pandoc.
    make -j"$(nproc 2>/dev/null || echo 2)" pgbouncer >"$work/make.log" 2>&1 \
      || { tail -n 30 "$work/make.log" >&2; exit 1; }
  ) || die "the build failed (logs in $work)"
  rm -rf "$PREFIX"; mkdir -p "$PREFIX/bin"
  install -m 0755 "$work/pgbouncer-$VERSION/pgbouncer" "$BIN"
  rm -rf "$work"
  built || die "the built binary does not say it is PgBouncer $VERSION"
  log "built $BIN"
  echo "$BIN"
}

# ------------------------------------------------------------------ settings
# What Starling needs of PgBouncer (docs/OPERATIONS.md, "PgBouncer").
settings() {
  cat <<EOF
; Transaction pooling: a server connection serves one client transaction
; (or one statement outside a transaction) at a time.
pool_mode = transaction
; Keeps the protocol-level named prepared statements sqlx makes (one per
; distinct query, cached per client connection) on whichever server
; connection a client gets (PgBouncer >= 1.21; 0 turns this off and
; Starling's queries then fail).
max_prepared_statements = ${PGBOUNCER_MAX_PREPARED_STATEMENTS:-200}
; Starling asks for its statement timeout in the startup packet
; (options=-c statement_timeout=...). PgBouncer cannot carry it to the
; server connections, so it ignores it and the timeout is set on the
; database instead (ALTER DATABASE ... SET statement_timeout).
ignore_startup_parameters = statement_timeout
; A client waiting this long for a server connection gets an error (as the
; store's own acquire timeout would) rather than hanging (default 120 s).
query_wait_timeout = 10
EOF
}

# ------------------------------------------------------------------ test
test_pid() { # the test PgBouncer's pid, if it runs
  local pid
  [[ -f "$TEST_DIR/pgbouncer.pid" ]] || return 0
  pid=$(cat "$TEST_DIR/pgbouncer.pid" 2>/dev/null || true)
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
  return 0
}

test_url() { echo "postgres://postgres@127.0.0.1:$TEST_PORT/postgres"; }

start_test() {
  if [[ -n "$(test_pid)" ]] && port_up "$TEST_PORT"; then
    log "already runs (pid $(test_pid)) on $TEST_PORT"
    test_url; return 0
  fi
  # Another checkout's test PgBouncer (same configuration, same server) will
  # do: tests only need one in transaction mode on this port.
  if port_up "$TEST_PORT" && pgrep -f "pgbouncer-test/pgbouncer.ini" >/dev/null 2>&1; then
    log "another checkout's test PgBouncer runs on $TEST_PORT; using it"
    test_url; return 0
  fi
  port_up "$TEST_PORT" && die "port $TEST_PORT is taken by something else (set STARLING_TEST_PGBOUNCER_PORT)"
  local bin; bin=$(ensure)
  local upstream="${STARLING_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  local hostport host port
  hostport=${upstream#*://}; hostport=${hostport#*@}; hostport=${hostport%%/*}; hostport=${hostport%%\?*}
  host=${hostport%%:*}; port=5432
  [[ $hostport == *:* ]] && port=${hostport##*:}
  mkdir -p "$TEST_DIR"
  rm -f "$TEST_DIR/pgbouncer.pid"
  # The tests connect as postgres without a password (as to their
  # PostgreSQL); PgBouncer still wants the user listed.
  echo '"postgres" ""' >"$TEST_DIR/userlist.txt"
  {
    cat <<EOF
; Written by scripts/pgbouncer.sh start-test.
[databases]
; Any database name: the tests create their own databases on PostgreSQL.
* = host=$host port=$port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $TEST_PORT
unix_socket_dir =
auth_type = trust
auth_file = $TEST_DIR/userlist.txt
admin_users = postgres
pidfile = $TEST_DIR/pgbouncer.pid
logfile = $TEST_DIR/pgbouncer.log
default_pool_size = ${PGBOUNCER_POOL_SIZE:-3}
max_client_conn = 2000
; Test databases are dropped often: forget their pools soon.
autodb_idle_timeout = 60
EOF
    settings
    if [[ $(id -u) -eq 0 ]]; then echo "user = postgres"; fi # it refuses to run as root
  } >"$TEST_DIR/pgbouncer.ini"
  [[ $(id -u) -eq 0 ]] && chown -R postgres "$TEST_DIR"
  "$bin" -d "$TEST_DIR/pgbouncer.ini" || die "PgBouncer did not start (log: $TEST_DIR/pgbouncer.log)"
  local deadline=$((SECONDS + 20))
  until port_up "$TEST_PORT"; do
    ((SECONDS < deadline)) || die "PgBouncer did not listen on $TEST_PORT (log: $TEST_DIR/pgbouncer.log)"
    sleep 0.1
  done
  log "PgBouncer $VERSION (pid $(test_pid)) on $TEST_PORT, transaction pooling in front of $host:$port"
  test_url
}

stop_test() {
  local pid; pid=$(test_pid)
  [[ -n "$pid" ]] || { log "the test PgBouncer does not run"; return 0; }
  kill -QUIT "$pid" 2>/dev/null || true # SIGQUIT: shut down at once
  local deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then kill -KILL "$pid" 2>/dev/null || true; fi
    sleep 0.1
  done
  rm -f "$TEST_DIR/pgbouncer.pid"
  log "stopped (pid $pid)"
}

case "${1:-}" in
  ensure) ensure ;;
  settings) settings ;;
  start-test) start_test ;;
  stop-test) stop_test ;;
  status-test)
    if [[ -n "$(test_pid)" ]]; then echo "running (pid $(test_pid)) at $(test_url)"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 ensure|settings|start-test|stop-test|status-test" >&2; exit 2 ;;
esac
