#!/usr/bin/env bash
# Makes sure the services that the distributed adapters' tests use are up:
# PostgreSQL (5432), Redis (6379) and NATS with JetStream (4222) on loopback,
# and PgBouncer in transaction pooling mode in front of that PostgreSQL
# (6432; scripts/pgbouncer.sh start-test, built from source the first time).
# Starts any that does not answer, installing it from Debian's packages when
# it is missing. Usage: scripts/services.sh ensure | status
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
  up 4222 && return 0
  log "starting NATS with JetStream"
  command -v nats-server >/dev/null || apt_install nats-server
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_up 4222 NATS
}

ensure_pgbouncer() {
  up 6432 && return 0
  bash "$(dirname "${BASH_SOURCE[0]}")/pgbouncer.sh" start-test >/dev/null
}

case "${1:-ensure}" in
  ensure)
    ensure_postgres; ensure_redis; ensure_nats; ensure_pgbouncer
    log "PostgreSQL, Redis, NATS and PgBouncer are up" ;;
  status)
    for s in "5432 PostgreSQL" "6379 Redis" "4222 NATS" "6432 PgBouncer"; do
      set -- $s; if up "$1"; then echo "$2: up"; else echo "$2: down"; fi
    done ;;
  *) echo "usage: $0 ensure|status" >&2; exit 2 ;;
esac
