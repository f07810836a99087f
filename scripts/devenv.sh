#!/bin/bash
# devenv.sh up|down|env|status - a throwaway Postgres and Redis for tests and the demo.
#
#   eval "$(scripts/devenv.sh up)"    start both, print exports for DATABASE_URL, REDIS_URL
#   eval "$(scripts/devenv.sh env)"   print the exports again for a running devenv
#   scripts/devenv.sh down            stop exactly what `up` started and remove its data
#
# State lives in $DEVENV_DIR (default .devenv/ at the top of the tree). Postgres
# runs as an unprivileged user (it refuses root): the invoking user if not
# root, else the "postgres" system user the Debian package creates. Both
# servers listen on 127.0.0.1 only, on free ports. Data is throwaway: fsync
# off, no Redis persistence.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
DEVENV_DIR=${DEVENV_DIR:-$top/.devenv}
state=$DEVENV_DIR/state

die() { echo "devenv: $*" >&2; exit 1; }

pgbin() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/pg_ctl" ] && { echo "$d"; return; }
	done
	command -v pg_ctl >/dev/null && { dirname "$(command -v pg_ctl)"; return; }
	die "postgres server binaries not found; run scripts/install-deps.sh"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
	local p i
	for i in $(seq 1 200); do
		p=$(( 20000 + RANDOM % 12768 ))   # below the ephemeral range (32768-): no outgoing connection holds it
		port_free "$p" && { echo "$p"; return; }
	done
	die "no free loopback port found"
}

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

print_env() {
	[ -f "$state" ] || die "not running (no $state); run: scripts/devenv.sh up"
	# shellcheck disable=SC1090
	. "$state"
	echo "export DATABASE_URL='postgresql://spinup@127.0.0.1:$PG_PORT/spinup'"
	echo "export REDIS_URL='redis://127.0.0.1:$REDIS_PORT/0'"
	echo "export SPINUP_DEVENV_DIR='$DEVENV_DIR'"
}

up() {
	if [ -f "$state" ]; then
		print_env
		return
	fi
	mkdir -p "$DEVENV_DIR"
	local bin pgdata pg_port redis_port tmp
	bin=$(pgbin)
	tmp=$(mktemp -d /tmp/spinup-devenv.XXXXXX)
	chmod 755 "$tmp"
	pgdata=$tmp/pg
	mkdir -p "$pgdata"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$pgdata"
	as_pg "$bin/initdb" -D "$pgdata" -U spinup -A trust -E UTF8 --no-locale >"$tmp/initdb.log" 2>&1 ||
		{ cat "$tmp/initdb.log" >&2; die "initdb failed"; }
	local tries=0
	while :; do
		pg_port=$(pick_port)
		if as_pg "$bin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 30 \
			-o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pgdata -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
			start >/dev/null 2>&1; then
			break
		fi
		tries=$((tries + 1))
		[ $tries -lt 5 ] || { cat "$pgdata/server.log" >&2; die "postgres did not start"; }
	done
	"$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U spinup spinup 2>/dev/null ||
		as_pg "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U spinup spinup
	tries=0
	while :; do
		redis_port=$(pick_port)
		if redis-server --port "$redis_port" --bind 127.0.0.1 --daemonize yes \
			--pidfile "$tmp/redis.pid" --dir "$tmp" --logfile "$tmp/redis.log" \
			--save "" --appendonly no >/dev/null 2>&1; then
			local i
			for i in $(seq 1 50); do
				redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break 2
				sleep 0.1
			done
		fi
		tries=$((tries + 1))
		[ $tries -lt 5 ] || { cat "$tmp/redis.log" >&2; die "redis did not start"; }
	done
	cat >"$state" <<EOS
TMP_DIR=$tmp
PG_BIN=$bin
PG_DATA=$pgdata
PG_PORT=$pg_port
REDIS_PORT=$redis_port
EOS
	print_env
}

down() {
	[ -f "$state" ] || return 0
	# shellcheck disable=SC1090
	. "$state"
	as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
	if [ -f "$TMP_DIR/redis.pid" ]; then
		kill "$(cat "$TMP_DIR/redis.pid")" 2>/dev/null || true
	fi
	case "$TMP_DIR" in /tmp/spinup-devenv.*) rm -rf "$TMP_DIR" ;; esac
	rm -f "$state"
}

case "${1:-}" in
up) up ;;
down) down ;;
env) print_env ;;
status) if [ -f "$state" ]; then cat "$state"; else echo "devenv: not running"; exit 1; fi ;;
-h|--help|"") echo "usage: scripts/devenv.sh up|down|env|status"; [ -n "${1:-}" ] ;;
*) die "unknown command '$1'; usage: scripts/devenv.sh up|down|env|status" ;;
esac
