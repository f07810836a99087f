#!/bin/bash
# bench.d/notify.sh - NOTIFY latency: a workspace row committed -> the first
# action spinupd journals for it (both timestamps from the database clock:
# workspaces.created_at, actions.created_at). spinupd runs with the sim
# drivers and a 60 s period, so only LISTEN/NOTIFY can wake it in time.
# Needs DATABASE_URL, REDIS_URL (scripts/bench.sh provides them).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${SPINUP_BIN_DIR:-$top/bin}
n=${NOTIFY_BENCH_N:-20}
work=$(mktemp -d /tmp/spinup-notify.XXXXXX)
dbname=spinup_notify_$$
DB=${DATABASE_URL%/*}/$dbname
pid=

cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	psql -XAtq "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $dbname WITH (FORCE)" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
sql() { psql -XAtq "$DB" -c "$1"; }

psql -XAtq "$DATABASE_URL" -c "CREATE DATABASE $dbname" >/dev/null
"$bin/spinctl" --db "$DB" migrate >/dev/null
cat >"$work/d.conf" <<EOC
database_url = $DB
redis_url = $REDIS_URL
cloud = sim
agent = sim
lease_key = spinup:bench:$$
lease_ttl_ms = 5000
period_ms = 60000
jitter_pct = 0
sim_launch_ms = 200
sim_agent_boot_ms = 100
EOC
"$bin/spinupd" --config "$work/d.conf" >"$work/d.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "leadership acquired" "$work/d.log" && break; sleep 0.1; done
sql "INSERT INTO pools (name, asg_name, region, slots_per_instance, max_instances)
     VALUES ('bench', 'asg-bench', 'eu-west-1', 64, 4)" >/dev/null
sleep 1
samples=()
for i in $(seq 1 "$n"); do
	mark=$(sql "SELECT coalesce(max(id), 0) FROM actions")
	sql "INSERT INTO workspaces (name, owner, pool_id) SELECT 'b$i', 'bench', id FROM pools" >/dev/null
	for _ in $(seq 1 200); do
		[ "$(sql "SELECT count(*) FROM actions WHERE id > $mark")" -gt 0 ] && break
		sleep 0.02
	done
	ms=$(sql "SELECT round(extract(epoch FROM (SELECT min(created_at) FROM actions WHERE id > $mark)
	          - w.created_at) * 1000, 1) FROM workspaces w WHERE w.name = 'b$i'")
	[ -n "$ms" ] || { echo "notify: no action for b$i within 4 s" >&2; exit 1; }
	samples+=("$ms")
	sleep 0.3
done
median=$(printf '%s\n' "${samples[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
max=$(printf '%s\n' "${samples[@]}" | sort -g | tail -1)
echo "| notify apply->first action | $median | ms |"
echo "| notify apply->first action (max of $n) | $max | ms |"
