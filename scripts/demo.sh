#!/bin/bash
# demo.sh [--sim] up|down|status - the whole system locally, non-interactive.
#
# By default the demo runs on the local stack (scripts/demo-local.sh, on
# scripts/localstack.sh): spinupd with its real AWS driver against
# spinup-localcloud, real spinup-agent processes on loopback addresses, a
# folder as the S3 bucket. With --sim (or DEMO_CLOUD=sim) it runs spinupd
# on the in-memory simulator instead, as below.
#
# --sim:
#   up     install missing packages, build, start a throwaway Postgres + Redis
#          in .demo/devenv, migrate, apply manifests/examples/, start spinupd
#          (--cloud sim --agent sim) in the background, and show the
#          workspaces converging; then stop one and delete one, converging
#          too. Returns with the stack running (`make demo-down` stops it).
#   down   stop spinupd and the devenv this script started
#   status what runs, and the workspaces
#
# Everything lives in .demo/ at the top of the tree: spinupd.conf,
# spinupd.log, spinupd.pid, devenv/ (DEVENV_DIR), manifests/.
# DEMO_TIMEOUT (seconds, default 120) bounds each wait.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
demo=$top/.demo
export DEVENV_DIR=$demo/devenv
timeout_s=${DEMO_TIMEOUT:-120}
spinctl=$top/bin/spinctl
spinupd=$top/bin/spinupd

say() { printf '\n== %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

running() { [ -f "$demo/spinupd.pid" ] && kill -0 "$(cat "$demo/spinupd.pid")" 2>/dev/null; }

free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 12768))   # below the ephemeral range (32768-): no outgoing connection holds it
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	die "no free loopback port"
}

write_config() {
	cat >"$demo/spinupd.conf" <<EOF
# spinupd configuration for the demo (see reconciler/config.h)
database_url = $DATABASE_URL
redis_url = $REDIS_URL
cloud = sim
agent = sim
period_ms = 2000
lease_ttl_ms = 6000
metrics_addr = 127.0.0.1:$(free_port)
sim_launch_ms = 4000
sim_agent_boot_ms = 1000
sim_container_start_ms = 1500
sim_container_ready_ms = 500
sim_terminate_ms = 3000
plan_launch_grace_ms = 20000
plan_backoff_base_ms = 500
plan_backoff_max_ms = 5000
plan_idle_cooldown_ms = 60000
EOF
	chmod 600 "$demo/spinupd.conf"
}

# The examples from manifests/examples/, or a built-in copy if they are missing.
manifests() {
	mkdir -p "$demo/manifests"
	if [ -d "$top/manifests/examples" ] && ls "$top"/manifests/examples/*.yaml >/dev/null 2>&1; then
		cp "$top"/manifests/examples/*.yaml "$demo/manifests/"
		return
	fi
	cat >"$demo/manifests/pool.yaml" <<'EOF'
apiVersion: spinup.dev/v1
kind: Pool
metadata:
  name: default
spec:
  asgName: spinup-default
  region: us-east-1
  instanceSlots: 2
  warmInstances: 1
  maxInstances: 10
  defaultImage: codercom/code-server:4.23.1
EOF
	cat >"$demo/manifests/workspaces.yaml" <<'EOF'
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: alice-blog
spec:
  owner: alice
  pool: default
  state: Running
  storage: { bucket: spinup-workspaces, prefix: alice/alice-blog/ }
---
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: bob-api
spec:
  owner: bob
  pool: default
  state: Running
  storage: { bucket: spinup-workspaces, prefix: bob/bob-api/ }
---
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: carol-notes
spec:
  owner: carol
  pool: default
  state: Stopped
  storage: { bucket: spinup-workspaces, prefix: carol/carol-notes/ }
EOF
}

sql() { psql -XAtq "$DATABASE_URL" -c "$1"; }

# Workspaces not yet where their spec wants them (READY / STOPPED, current generation).
unsettled() {
	sql "SELECT w.name FROM workspaces w LEFT JOIN workspace_status s ON s.workspace_id = w.id
	     WHERE w.deletion_requested_at IS NOT NULL OR s.workspace_id IS NULL
	        OR s.observed_generation <> w.generation
	        OR s.phase::text <> CASE w.state WHEN 'Running' THEN 'READY' ELSE 'STOPPED' END
	     ORDER BY w.name"
}

# converge TITLE: show `spinctl get workspaces` until everything settled, or fail.
converge() {
	local title=$1 start=$SECONDS left shown=""
	say "$title"
	while :; do
		left=$(unsettled)
		local now key
		now=$("$spinctl" get workspaces 2>&1 || true)
		key=$(printf '%s\n' "$now" | awk '{ $NF = ""; print }')   # without AGE
		if [ "$key" != "$shown" ]; then
			printf '%s  (%ss)\n%s\n\n' "$(date -u +%H:%M:%S)" $((SECONDS - start)) "$now"
			shown=$key
		fi
		[ -z "$left" ] && return 0
		if [ $((SECONDS - start)) -ge "$timeout_s" ]; then
			echo "demo: not converged after ${timeout_s}s; what blocks each one:" >&2
			for n in $left; do
				"$spinctl" why "$n" >&2 || true
				echo >&2
			done
			echo "spinupd log: $demo/spinupd.log" >&2
			exit 1
		fi
		running || die "spinupd exited; see $demo/spinupd.log"
		sleep 1
	done
}

start_spinupd() {
	if running; then
		echo "spinupd already running (pid $(cat "$demo/spinupd.pid"))"
		return
	fi
	write_config
	nohup "$spinupd" --cloud sim --agent sim --config "$demo/spinupd.conf" \
		>>"$demo/spinupd.log" 2>&1 </dev/null &
	echo $! >"$demo/spinupd.pid"
	for _ in $(seq 1 50); do
		grep -q "leadership acquired" "$demo/spinupd.log" 2>/dev/null && break
		running || die "spinupd did not start; see $demo/spinupd.log"
		sleep 0.2
	done
	echo "spinupd running, pid $(cat "$demo/spinupd.pid"), log $demo/spinupd.log"
}

explore() {
	local m
	m=$(awk -F' = ' '$1 == "metrics_addr" { print $2 }' "$demo/spinupd.conf")
	cat <<EOF

== The stack is running. To explore:
  eval "\$(DEVENV_DIR=$DEVENV_DIR scripts/devenv.sh env)"   # DATABASE_URL, REDIS_URL
  bin/spinctl get workspaces            # status; add -o wide, or --watch
  bin/spinctl events                    # one event per phase change
  bin/spinctl why alice-blog            # what blocks a workspace, who must act
  bin/spinctl drift                     # drift findings (exit 0 in sync, 1 drift)
  bin/spinctl apply -f manifests/examples/      # declare; spinupd reacts within ms
  curl -s http://$m/metrics             # passes, actions, pass duration, leader
  redis-cli -u "\$REDIS_URL" HGETALL spinup:ws:1   # the runtime mirror
  tail -f .demo/spinupd.log             # one line per pass
  make demo-down                        # stop everything the demo started
EOF
}

up() {
	mkdir -p "$demo"
	say "dependencies and build"
	"$top/scripts/install-deps.sh"
	make -C "$top" --no-print-directory -j2 all >"$demo/build.log" 2>&1 ||
		{ tail -n 30 "$demo/build.log" >&2; die "build failed (see $demo/build.log)"; }
	[ -x "$spinctl" ] && [ -x "$spinupd" ] || die "bin/spinctl or bin/spinupd missing after the build"
	say "Postgres and Redis (throwaway, in $DEVENV_DIR)"
	eval "$("$top/scripts/devenv.sh" up)"
	echo "DATABASE_URL=$DATABASE_URL"
	echo "REDIS_URL=$REDIS_URL"
	say "spinctl migrate"
	"$spinctl" migrate
	say "spinctl apply -f manifests/examples/"
	manifests
	"$spinctl" apply -f "$demo/manifests/"
	say "spinupd --cloud sim --agent sim"
	start_spinupd
	converge "workspaces converging"
	say "stop alice-blog (state: Stopped) and delete bob-api"
	awk '/^  name: alice-blog$/ { a = 1 } a && /^  state: Running$/ { sub(/Running/, "Stopped"); a = 0 } { print }' \
		"$demo/manifests/workspaces.yaml" >"$demo/manifests/workspaces.yaml.new"
	mv "$demo/manifests/workspaces.yaml.new" "$demo/manifests/workspaces.yaml"
	"$spinctl" apply -f "$demo/manifests/workspaces.yaml" || die "apply failed"
	"$spinctl" delete workspace bob-api || die "delete failed"
	converge "stop and delete converging"
	say "events"
	"$spinctl" events --limit 30 || true
	explore
}

down() {
	if running; then
		local pid
		pid=$(cat "$demo/spinupd.pid")
		kill -TERM "$pid"
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
		echo "spinupd stopped"
	fi
	rm -f "$demo/spinupd.pid"
	"$top/scripts/devenv.sh" down
	echo "demo stopped (logs kept in $demo)"
}

status() {
	if running; then echo "spinupd: running, pid $(cat "$demo/spinupd.pid")"; else echo "spinupd: not running"; fi
	if "$top/scripts/devenv.sh" status >/dev/null 2>&1; then
		eval "$("$top/scripts/devenv.sh" env)"
		"$spinctl" get workspaces
	else
		echo "devenv: not running"
	fi
}

mode=${DEMO_CLOUD:-local}
if [ "${1:-}" = "--sim" ]; then
	mode=sim
	shift
fi

local_up() {
	mkdir -p "$demo"
	say "dependencies and build"
	"$top/scripts/install-deps.sh"
	make -C "$top" --no-print-directory -j2 all >"$demo/build.log" 2>&1 ||
		{ tail -n 30 "$demo/build.log" >&2; die "build failed (see $demo/build.log)"; }
	LOCALSTACK_DIR=$demo exec "$top/scripts/demo-local.sh" up
}

# Either variant may be running: down stops both (each is a no-op when idle).
all_down() {
	LOCALSTACK_DIR=$demo "$top/scripts/demo-local.sh" down
	down
}

local_status() {
	LOCALSTACK_DIR=$demo "$top/scripts/localstack.sh" status || return 0
	eval "$(LOCALSTACK_DIR=$demo "$top/scripts/localstack.sh" env)"
	"$demo/bin/spinctl" get workspaces
}

case "$mode:${1:-up}" in
sim:up) up ;;
sim:status) status ;;
local:up) local_up ;;
local:status) local_status ;;
*:down) all_down ;;
*:-h|*:--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' ;;
*) die "unknown command '${1:-}'; usage: scripts/demo.sh [--sim] up|down|status" ;;
esac
