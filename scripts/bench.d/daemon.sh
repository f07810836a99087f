#!/bin/bash
# bench.d/daemon.sh - spinupd at scale with the sim drivers: N workspaces
# (default 1000) applied at once; time until every one is READY, then the
# duration and database round trips of a converged pass (from its summary
# line). Needs DATABASE_URL, REDIS_URL (scripts/bench.sh provides them).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${SPINUP_BIN_DIR:-$top/bin}
n=${DAEMON_BENCH_N:-1000}
work=$(mktemp -d /tmp/spinup-daemon-bench.XXXXXX)
dbname=spinup_daemon_$$
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
lease_key = spinup:bench-daemon:$$
period_ms = 500
max_mutations = 2000
sim_launch_ms = 500
sim_agent_boot_ms = 100
sim_container_start_ms = 200
sim_container_ready_ms = 100
EOC
"$bin/spinupd" --config "$work/d.conf" >"$work/d.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "leadership acquired" "$work/d.log" && break; sleep 0.1; done
sql "INSERT INTO pools (name, asg_name, region, slots_per_instance, max_instances)
     VALUES ('bench', 'asg-bench', 'eu-west-1', 32, $(( (n + 31) / 32 + 1 )))" >/dev/null
start=$(date +%s.%N)
sql "INSERT INTO workspaces (name, owner, pool_id) SELECT 'w' || g, 'bench', id
     FROM pools, generate_series(1, $n) g" >/dev/null
ready=0
for _ in $(seq 1 1200); do
	ready=$(sql "SELECT count(*) FROM workspace_status WHERE phase = 'READY'")
	[ "$ready" -ge "$n" ] && break
	sleep 0.1
done
[ "$ready" -ge "$n" ] || { echo "daemon bench: only $ready of $n READY after 120 s" >&2; exit 1; }
end=$(date +%s.%N)
sleep 2
line=$(grep "pass outcome=converged" "$work/d.log" | tail -1)
[ -n "$line" ] || { echo "daemon bench: no converged pass" >&2; exit 1; }
ms=$(printf '%s\n' "$line" | grep -o ' ms=[0-9]*' | grep -o '[0-9]*')
trips=$(printf '%s\n' "$line" | grep -o 'db_trips=[0-9]*' | grep -o '[0-9]*')
act=$(grep "pass outcome=acted" "$work/d.log" | grep -o 'db_trips=[0-9]*' | grep -o '[0-9]*' | sort -n | tail -1)
echo "| spinupd apply $n workspaces -> all READY (sim) | $(awk "BEGIN { printf \"%.1f\", $end - $start }") | s |"
echo "| spinupd converged pass, $n workspaces | $ms | ms |"
echo "| spinupd db round trips, converged pass | $trips | trips |"
echo "| spinupd db round trips, acting pass (max) | ${act:-0} | trips |"
