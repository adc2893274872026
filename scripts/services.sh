#!/usr/bin/env bash
# Makes sure the services that the distributed adapters' tests use are up:
# PostgreSQL (5432), Redis (6379) and NATS with JetStream (4222) on loopback,
# and PgBouncer in transaction pooling mode in front of that PostgreSQL
# (6432; scripts/pgbouncer.sh start-test, built from source the first time).
# For the media crate: an S3-compatible object store, s3s-fs (crates.io,
# `cargo install`; a real S3 server verifying SigV4, objects as files under
# /var/lib/starling-s3) on 127.0.0.1:9000 with the test bucket
# starling-test, and ffmpeg/ffprobe (Debian) for video and GIF processing.
# Starts any that does not answer, installing it from Debian's packages (or
# crates.io) when it is missing. Usage: scripts/services.sh ensure | status
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_up() { # port name
  for _ in $(seq 1 60); do up "$1" && return 0; sleep 0.5; done
  log "$2 did not come up on port $1"; return 1
}

apt_install() {
  command -v apt-get >/dev/null || { log "no apt-get to install $*"; return 1; }
  [[ -n "${APT_UPDATED:-}" ]] || { apt-get update -qq; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  up 5432 && return 0
  log "starting PostgreSQL"
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  local version; version=$(ls /etc/postgresql | sort -V | tail -n1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_up 5432 PostgreSQL
}

ensure_redis() {
  up 6379 && return 0
  log "starting Redis"
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_up 6379 Redis
}

ensure_nats() {
  if ! up 4222; then
    log "starting NATS with JetStream"
    command -v nats-server >/dev/null || apt_install nats-server
    mkdir -p /var/lib/nats-server
    start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    wait_up 4222 NATS
  fi
  nats_keep_stream
}

# One stream that always exists. The tests create and delete streams of
# their own in parallel; when the last one goes, nats-server removes its
# store's streams directory, and a stream created at that moment fails
# ("could not create storage directory", seen in CI). With this stream the
# directory stays. Created over the plain protocol (no NATS CLI needed);
# creating it again changes nothing.
nats_keep_stream() {
  local body='{"name":"STARLING_TEST_KEEP","subjects":["starling-test-keep.never"],"storage":"file","max_msgs":1}'
  {
    exec 3<>/dev/tcp/127.0.0.1/4222 || return 0
    printf 'CONNECT {"verbose":false}\r\nPUB $JS.API.STREAM.CREATE.STARLING_TEST_KEEP %d\r\n%s\r\nPING\r\n' \
      "${#body}" "$body" >&3
    timeout 5 grep -m1 -q PONG <&3 || true
    exec 3>&-
  } 2>/dev/null
}

ensure_pgbouncer() {
  up 6432 && return 0
  bash "$(dirname "${BASH_SOURCE[0]}")/pgbouncer.sh" start-test >/dev/null
}

# s3s-fs 0.14 is the newest that builds on this toolchain (0.17 wants Rust
# 1.96); its credentials and bucket are the ones starling-testkit defaults to.
S3S_VERSION=0.14.1
S3_ROOT=/var/lib/starling-s3
ensure_s3() {
  mkdir -p "$S3_ROOT/starling-test" # a bucket is a directory
  up 9000 && return 0
  log "starting s3s-fs (S3) on 127.0.0.1:9000"
  local bin="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs"
  if ! "$bin" --version 2>/dev/null | grep -q "$S3S_VERSION"; then
    log "installing s3s-fs $S3S_VERSION from crates.io (a few minutes, once)"
    cargo install --quiet --locked "s3s-fs@$S3S_VERSION" --features binary
  fi
  start-stop-daemon --start --oknodo --background --make-pidfile \
    --pidfile /run/starling-s3s-fs.pid --output /var/log/starling-s3s-fs.log --exec "$bin" -- \
    --host 127.0.0.1 --port 9000 --access-key starling --secret-key starling-test-secret "$S3_ROOT"
  wait_up 9000 s3s-fs
}

ensure_ffmpeg() {
  command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null && return 0
  log "installing ffmpeg"
  apt_install ffmpeg
}

case "${1:-ensure}" in
  ensure)
    ensure_postgres; ensure_redis; ensure_nats; ensure_pgbouncer; ensure_s3; ensure_ffmpeg
    log "PostgreSQL, Redis, NATS, PgBouncer and S3 (s3s-fs) are up; ffmpeg is installed" ;;
  status)
    for s in "5432 PostgreSQL" "6379 Redis" "4222 NATS" "6432 PgBouncer" "9000 S3"; do
      set -- $s; if up "$1"; then echo "$2: up"; else echo "$2: down"; fi
    done ;;
  *) echo "usage: $0 ensure|status" >&2; exit 2 ;;
esac
