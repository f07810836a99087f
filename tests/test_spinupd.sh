#!/bin/bash
# test_spinupd.sh - spinupd end to end on a real Postgres and Redis with the
# sim cloud and agents (run by scripts/run-tests.sh: DATABASE_URL, REDIS_URL,
# SPINUP_BIN_DIR set).
#
#   1 a leader that dies mid-pass (SIGSTOPped in its journal, then kill -9)
#     is replaced: the other process settles what it left pending and
#     converges every workspace to READY, one container each
#   2 two processes: exactly one acts (every action of the period carries
#     the leader's epoch; the follower never leads)
#   3 stop converges to STOPPED; delete finalizes (DELETE_COMPLETED, row and
#     mirror entry gone)
#   4 a leader SIGSTOPped before recording, resumed after another took over,
#     has its writes refused: SP_EFENCED in its log, nothing with its epoch
#   5 Redis goes away: the leader stops acting (nothing journaled), loses
#     nothing; Redis comes back empty: leadership again, mirror rebuilt, the
#     change made meanwhile converges
#   6 the command line: -n, a config error with file:line:col, --dry-run
#     changes nothing and observes with the current epoch (not bumped),
#     --once, SIGHUP reloads; spinctl why and drift
#   7 the database connection is cut: spinupd reconnects, LISTENs again (a
#     change is picked up with a 60 s period) and converges it
#   8 a leader SIGSTOPped between journaling and acting, resumed after
#     another took over, issues no cloud or agent call (its lease cannot be
#     renewed): nothing in its spinup_actions_total
#   9 --once exit codes on a database of its own: 0 converged, 0 progressing,
#     1 blind (the cloud unreachable: the group unknown, never converged),
#     3 stuck (no progress, a pool safety-stopped)
#
# Short periods and a 3 s lease keep it fast; each wait has a deadline.
set -uo pipefail

top=${SPINUP_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${SPINUP_BIN_DIR:-$top/bin}
: "${DATABASE_URL:?run through scripts/run-tests.sh}"
: "${REDIS_URL:?run through scripts/run-tests.sh}"

work=$(mktemp -d /tmp/spinupd-test.XXXXXX)
dbname=spinupd_t_$$
base=${DATABASE_URL%/*}
DB=$base/$dbname
pids=()

fail() {
	echo "FAIL: $*" >&2
	for f in "$work"/*.log; do
		[ -f "$f" ] || continue
		echo "---- $(basename "$f") (last 25 lines)" >&2
		tail -n 25 "$f" >&2
	done
	exit 1
}

cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -CONT "$p" 2>/dev/null
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	done
	psql -XAtq "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $dbname WITH (FORCE)" >/dev/null 2>&1
	psql -XAtq "$DATABASE_URL" -c "DROP DATABASE IF EXISTS ${dbname}_once WITH (FORCE)" >/dev/null 2>&1
	redis-cli -u "$REDIS_URL" DEL "spinup:test:$$" >/dev/null 2>&1
	[ -n "${rport:-}" ] && redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

sql() { psql -XAtq "$DB" -c "$1"; }

# wait_for DESCRIPTION SECONDS COMMAND...: until the command succeeds.
wait_for() {
	local what=$1 secs=$2 i
	shift 2
	for i in $(seq 1 $((secs * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "timed out after ${secs}s waiting for: $what"
}

free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 12768))   # below the ephemeral range (32768-): no outgoing connection holds it
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	fail "no free port"
}

# start NAME [extra config lines...]: a spinupd in the background; pid in pid_NAME
start() {
	local name=$1 port
	shift
	port=$(free_port)
	{
		echo "database_url = $DB"
		echo "redis_url = $REDIS_URL"
		echo "cloud = sim"
		echo "agent = sim"
		echo "lease_key = spinup:test:$$"
		echo "lease_name = t$$"
		echo "lease_ttl_ms = 3000"
		echo "period_ms = 300"
		echo "holder = $name"
		echo "metrics_addr = 127.0.0.1:$port"
		echo "sim_launch_ms = 500"
		echo "sim_agent_boot_ms = 200"
		echo "sim_container_start_ms = 300"
		echo "sim_container_ready_ms = 200"
		echo "sim_terminate_ms = 500"
		echo "plan_launch_grace_ms = 3000"
		echo "plan_backoff_base_ms = 200"
		echo "plan_backoff_max_ms = 1000"
		for l in "$@"; do echo "$l"; done
	} >"$work/$name.conf"
	chmod 600 "$work/$name.conf"
	"$bin/spinupd" --config "$work/$name.conf" >"$work/$name.log" 2>&1 &
	pids+=($!)
	eval "pid_$name=$!"
	disown $!
	eval "port_$name=$port"
}

is_stopped() { case "$(ps -o stat= -p "$1" 2>/dev/null)" in T*) return 0 ;; esac; return 1; }
ready_count() { sql "SELECT count(*) FROM workspace_status s JOIN workspaces w ON w.id = s.workspace_id WHERE s.phase = 'READY' AND s.observed_generation = w.generation"; }
all_ready() { [ "$(ready_count)" -eq "$1" ]; }
phase_of() { sql "SELECT s.phase FROM workspace_status s JOIN workspaces w ON w.id = s.workspace_id WHERE w.name = '$1'"; }
has_phase() { [ "$(phase_of "$1")" = "$2" ]; }
gone() { [ "$(sql "SELECT count(*) FROM workspaces WHERE name = '$1'")" -eq 0 ]; }
log_has() { grep -q -- "$2" "$work/$1.log"; }
epoch_of() { grep -o 'leadership acquired epoch=[0-9]*' "$work/$1.log" | tail -1 | grep -o '[0-9]*$'; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }

psql -XAtq "$DATABASE_URL" -c "CREATE DATABASE $dbname" || fail "create database"
"$bin/spinctl" --db "$DB" migrate >/dev/null || fail "spinctl migrate"

cat >"$work/pool.yaml" <<'EOF'
apiVersion: spinup.dev/v1
kind: Pool
metadata:
  name: default
spec:
  asgName: asg-test
  region: eu-west-1
  instanceSlots: 2
  maxInstances: 10
  defaultImage: codercom/code-server:4
EOF
for n in ws1 ws2 ws3; do
	cat >>"$work/ws.yaml" <<EOF
---
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: $n
spec:
  owner: alice
  pool: default
  state: Running
  storage:
    bucket: spinup-files
    prefix: alice/$n/
EOF
done

# -------------------------------------------------- 1 kill -9 mid-pass
start a "debug_stop_at = pending"
wait_for "a leads" 10 log_has a "leadership acquired"
"$bin/spinctl" --db "$DB" apply -f "$work/pool.yaml" -f "$work/ws.yaml" >/dev/null || fail "apply"
wait_for "a stops itself in its journal" 15 is_stopped "$pid_a"
[ "$(sql "SELECT count(*) FROM actions WHERE state = 'pending'")" -ge 1 ] ||
	fail "no pending journal entry left by a"
start b
sleep 0.5
kill -KILL "$pid_a"
wait_for "b takes over" 15 log_has b "leadership acquired"
wait_for "3 workspaces READY under b" 40 all_ready 3
[ "$(sql "SELECT count(*) FROM actions WHERE state = 'pending' AND epoch < $(epoch_of b)")" -eq 0 ] ||
	fail "entries of the dead leader still pending"
[ "$(sql "SELECT count(*) FROM actions WHERE error LIKE 'settled%'")" -ge 1 ] ||
	fail "b did not settle the dead leader's journal"
log_has b "journal settled" || fail "no settle line in b's log"
[ "$(metric "$port_b" spinup_sim_duplicate_workspaces)" = "0" ] || fail "a workspace has two containers"
[ "$(metric "$port_b" spinup_sim_containers)" = "3" ] || fail "expected 3 containers in b's world"
[ "$(sql "SELECT count(*) FROM workspaces")" -eq 3 ] || fail "a workspace was lost"
echo "ok 1 kill -9 mid-pass: b settled a's journal and converged"

# -------------------------------------------------- 2 two processes, one acts
ep_b=$(epoch_of b)
start c
mark=$(sql "SELECT coalesce(max(id), 0) FROM actions")
cat >"$work/ws4.yaml" <<'EOF'
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: ws4
spec:
  owner: bob
  pool: default
  storage:
    bucket: spinup-files
    prefix: bob/ws4/
EOF
"$bin/spinctl" --db "$DB" apply -f "$work/ws4.yaml" >/dev/null || fail "apply ws4"
wait_for "4 workspaces READY" 30 all_ready 4
n_b=$(sql "SELECT count(*) FROM actions WHERE id > $mark AND epoch = $ep_b")
n_other=$(sql "SELECT count(*) FROM actions WHERE id > $mark AND epoch <> $ep_b")
[ "$n_b" -ge 1 ] || fail "the leader journaled no action for ws4"
[ "$n_other" -eq 0 ] || fail "$n_other actions by another epoch while b leads"
log_has c "leadership acquired" && fail "the follower c acquired the lease"
log_has c "pass outcome" && fail "the follower c ran a pass"
echo "ok 2 two processes: b acted $n_b times, c never"

# -------------------------------------------------- 3 stop and delete
sql "UPDATE workspaces SET state = 'Stopped' WHERE name = 'ws1'" >/dev/null
wait_for "ws1 STOPPED" 20 has_phase ws1 STOPPED
id2=$(sql "SELECT id FROM workspaces WHERE name = 'ws2'")
"$bin/spinctl" --db "$DB" delete workspace ws2 >/dev/null 2>&1 ||
	sql "UPDATE workspaces SET deletion_requested_at = now() WHERE name = 'ws2'" >/dev/null
wait_for "ws2 finalized" 20 gone ws2
[ "$(sql "SELECT count(*) FROM workspace_events WHERE workspace_id = $id2 AND type = 'DELETE_COMPLETED'")" -eq 1 ] ||
	fail "no DELETE_COMPLETED event for ws2"
[ "$(redis-cli -u "$REDIS_URL" EXISTS "spinup:ws:$id2")" = "0" ] || fail "ws2 still in the redis mirror"
id3=$(sql "SELECT id FROM workspaces WHERE name = 'ws3'")
[ "$(redis-cli -u "$REDIS_URL" HGET "spinup:ws:$id3" phase)" = "READY" ] || fail "ws3 not READY in the mirror"
echo "ok 3 stop converged, delete finalized"

# -------------------------------------------------- 4 a stale leader is fenced
kill -TERM "$pid_c"
start d "debug_stop_at = record"
sleep 0.3
kill -TERM "$pid_b"
wait_for "d leads and stops itself before recording" 15 is_stopped "$pid_d"
ep_d=$(epoch_of d)
[ -n "$ep_d" ] || fail "d never led"
start e
wait_for "e takes over" 15 log_has e "leadership acquired"
kill -CONT "$pid_d"
wait_for "d is refused" 10 log_has d "SP_EFENCED"
[ "$(sql "SELECT count(*) FROM reconcile_passes WHERE epoch = $ep_d")" -eq 0 ] || fail "a pass row of the stale leader landed"
[ "$(sql "SELECT count(*) FROM workspace_status WHERE epoch = $ep_d")" -eq 0 ] || fail "a status of the stale leader landed"
[ "$(sql "SELECT count(*) FROM workspace_events WHERE epoch = $ep_d")" -eq 0 ] || fail "an event of the stale leader landed"
e_world() { [ "$(metric "$port_e" spinup_sim_containers)" = "2" ] && all_ready 2; }
wait_for "ws3 and ws4 READY in e's world" 40 e_world
[ "$(metric "$port_e" spinup_sim_duplicate_workspaces)" = "0" ] || fail "a workspace has two containers"
has_phase ws1 STOPPED || fail "ws1 is no longer STOPPED"
log_has e "spinupd running" || fail "e did not start"
echo "ok 4 stale leader fenced (epoch $ep_d refused), e converged"

# -------------------------------------------------- 5 redis outage
kill -TERM "$pid_d" "$pid_e"
exited() { ! kill -0 "$1" 2>/dev/null; }
wait_for "e exits" 10 exited "$pid_e"
log_has e "lease released=1" || fail "e did not release its lease on SIGTERM"
rport=$(free_port)
redis_up() {
	local i
	redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
		--dir "$work" --logfile "$work/redis-private.txt" >/dev/null
	for i in $(seq 1 100); do
		redis-cli -p "$rport" ping >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "private redis on $rport did not answer: $(tail -n 3 "$work/redis-private.txt" 2>&1)" >&2
	return 1
}
redis_up || { rport=$(free_port); redis_up; } || fail "a private redis would not start"
start f "redis_url = redis://127.0.0.1:$rport/0"
f_world() { [ "$(metric "$port_f" spinup_sim_containers)" = "$1" ] && all_ready "$1"; }
wait_for "f converges" 40 f_world 2
redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1
wait_for "f stops acting" 10 log_has f "cannot lead, not acting"
log_has f "leadership lost" || fail "f did not step down when redis went away"
mark=$(sql "SELECT coalesce(max(id), 0) FROM actions")
sed 's/ws4/ws5/g' "$work/ws4.yaml" >"$work/ws5.yaml"
"$bin/spinctl" --db "$DB" apply -f "$work/ws5.yaml" >/dev/null || fail "apply ws5"
sleep 2
[ "$(sql "SELECT count(*) FROM actions WHERE id > $mark")" -eq 0 ] || fail "actions journaled without the lease"
[ "$(sql "SELECT count(*) FROM workspace_status s JOIN workspaces w ON w.id = s.workspace_id WHERE w.name = 'ws5'")" -eq 0 ] ||
	fail "status written without the lease"
redis_up || fail "the private redis would not start again on $rport"
wait_for "f leads again" 15 eval '[ "$(grep -c "leadership acquired" "$work/f.log")" -ge 2 ]'
wait_for "ws5 converges" 40 f_world 3
log_has f "redis mirror rebuilt" || fail "no mirror rebuild after redis came back"
[ "$(redis-cli -p "$rport" HGET "spinup:ws:$id3" phase)" = "READY" ] || fail "ws3 missing from the rebuilt mirror"
[ "$(redis-cli -p "$rport" SCARD spinup:ws:index)" = "4" ] || fail "mirror index should hold 4 workspaces"
echo "ok 5 redis outage: stopped acting, nothing lost, mirror rebuilt"

# -------------------------------------------------- 6 command line
kill -TERM "$pid_f"
wait_for "f exits" 10 exited "$pid_f"
"$bin/spinupd" -n --config "$work/f.conf" | grep -q "configuration OK" || fail "-n"
printf 'period_ms = 10\nno_such_key = 1\n' >"$work/bad.conf"
out=$("$bin/spinupd" -n --config "$work/bad.conf" 2>&1) && fail "-n accepted a bad file"
case "$out" in *"bad.conf:2:1: unknown key 'no_such_key'"*) ;; *) fail "config error not positioned: $out" ;; esac
mark=$(sql "SELECT coalesce(max(id), 0) FROM actions")
passes=$(sql "SELECT count(*) FROM reconcile_passes")
lease_epoch() { sql "SELECT coalesce((SELECT epoch FROM operator_leases WHERE name = 't$$'), 0)"; }
ep_now=$(lease_epoch)
[ "$ep_now" -ge 1 ] || fail "no epoch in operator_leases"
out=$("$bin/spinupd" --dry-run --config "$work/f.conf" 2>"$work/dry.log") || fail "--dry-run failed"
[ -n "$out" ] || fail "--dry-run printed no plan"
grep -q "dry-run observes with the current fencing epoch=$ep_now " "$work/dry.log" ||
	fail "--dry-run did not observe with the current epoch $ep_now: $(cat "$work/dry.log")"
[ "$(lease_epoch)" = "$ep_now" ] || fail "--dry-run bumped the epoch"
[ "$(sql "SELECT count(*) FROM actions WHERE id > $mark")" -eq 0 ] || fail "--dry-run journaled actions"
[ "$(sql "SELECT count(*) FROM reconcile_passes")" -eq "$passes" ] || fail "--dry-run recorded a pass"
"$bin/spinupd" --once --config "$work/f.conf" >"$work/once.log" 2>&1 || fail "--once failed"
[ "$(sql "SELECT count(*) FROM reconcile_passes")" -eq $((passes + 1)) ] || fail "--once did not record one pass"
start g "redis_url = redis://127.0.0.1:$rport/0"
wait_for "g leads" 10 log_has g "leadership acquired"
sed -i 's/^period_ms = 300$/period_ms = 400/' "$work/g.conf"
kill -HUP "$pid_g"
wait_for "g reloads" 10 log_has g "configuration reloaded period_ms=400"
[ "$(curl -s "http://127.0.0.1:$port_g/healthz")" = "ok" ] || fail "/healthz"
wait_for "g reports leadership" 5 eval '[ "$(metric "$port_g" spinup_leader)" = "1" ]'
curl -s "http://127.0.0.1:$port_g/metrics" | grep -q '^spinup_actions_total{type="ensure_container"}' ||
	fail "/metrics has no actions by type"
g_world() { [ "$(metric "$port_g" spinup_sim_containers)" = "3" ] && all_ready 3; }
wait_for "g converges" 40 g_world
[ "$(metric "$port_g" 'spinup_workspaces{phase="READY"}')" -ge 3 ] ||
	fail "/metrics does not count the READY workspaces"
curl -s "http://127.0.0.1:$port_g/status" | grep -q "^leader: *yes (fencing epoch" ||
	fail "/status does not say g leads: $(curl -s "http://127.0.0.1:$port_g/status")"
curl -s "http://127.0.0.1:$port_g/status" | grep -q "^workspaces: .*READY" || fail "/status has no phases"
"$bin/spinctl" --db "$DB" why ws3 | grep -q "blocked by: *nothing" || fail "why ws3 should say nothing blocks"
sql "UPDATE workspaces SET paused_until = now() + interval '1 hour', state = 'Stopped' WHERE name = 'ws4'" >/dev/null
"$bin/spinctl" --db "$DB" why ws4 | grep -q "blocked by: *the workspace is paused" || fail "why ws4 should name the pause"
"$bin/spinctl" --db "$DB" drift -o json >"$work/drift.json"; drc=$?
[ "$drc" -eq 0 ] || [ "$drc" -eq 1 ] || fail "spinctl drift exit $drc"
grep -q '"inSync"' "$work/drift.json" || fail "spinctl drift -o json"
kill -TERM "$pid_g"
wait_for "g exits" 10 exited "$pid_g"
sql "UPDATE drift SET resolved_at = now() WHERE resolved_at IS NULL" >/dev/null
"$bin/spinctl" --db "$DB" drift >/dev/null; drc=$?
[ "$drc" -eq 0 ] || fail "spinctl drift in sync should exit 0, not $drc"
sql "INSERT INTO drift (subject, reason, cls, desired, observed, first_seen, last_seen)
     VALUES ('instance/i-zz', 'InstanceUnmanaged', 'unmanaged', 'absent', 'running', now(), now())" >/dev/null
out=$("$bin/spinctl" --db "$DB" drift); drc=$?
[ "$drc" -eq 1 ] || fail "spinctl drift with drift should exit 1, not $drc"
case "$out" in *InstanceUnmanaged*) ;; *) fail "spinctl drift does not list the finding" ;; esac
"$bin/spinctl" --db "$DB" silence instance/i-zz --reason InstanceUnmanaged --for 1h >/dev/null ||
	fail "spinctl silence"
"$bin/spinctl" --db "$DB" drift >/dev/null; drc=$?
[ "$drc" -eq 0 ] || fail "a silenced finding should not count as drift (exit $drc)"
"$bin/spinctl" --db "$DB" drift --all | grep -q "(silenced)" || fail "drift --all should show the silenced finding"
"$bin/spinctl" --db "postgresql://127.0.0.1:1/none?connect_timeout=2" drift >/dev/null 2>&1; drc=$?
[ "$drc" -eq 2 ] || fail "spinctl drift without a database should exit 2, not $drc"
echo "ok 6 command line: -n, positioned errors, --dry-run, --once, SIGHUP, why, drift exit codes"

# -------------------------------------------------- 7 database connection cut
# A 60 s period: once converged, only a NOTIFY can start the next pass.
start h "redis_url = redis://127.0.0.1:$rport/0" "period_ms = 60000"
wait_for "h leads" 10 log_has h "leadership acquired"
settled_h() { grep "pass outcome" "$work/h.log" | tail -1 | grep -q "outcome=converged"; }
wait_for "h converges" 30 settled_h
psql -XAtq "$DB" -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE datname = '$dbname' AND application_name = 'spinupd'" >/dev/null
wait_for "h reconnects" 10 log_has h "database reconnected"
reconnected_settled() {
	sed -n '/database reconnected/,$p' "$work/h.log" | grep "pass outcome" | tail -1 |
		grep -q "outcome=converged"
}
wait_for "h converged after reconnecting" 30 reconnected_settled
sed 's/ws4/ws6/g' "$work/ws4.yaml" >"$work/ws6.yaml"
"$bin/spinctl" --db "$DB" apply -f "$work/ws6.yaml" >/dev/null || fail "apply ws6"
ws6_seen() { [ -n "$(phase_of ws6)" ]; }
wait_for "ws6 picked up through LISTEN on the new connection" 10 ws6_seen
ws6_ready() { has_phase ws6 READY; }
wait_for "ws6 READY (busy period while it converges)" 30 ws6_ready
echo "ok 7 database connection cut: reconnected and converged"

# -------------------------------------------------- 8 a stale leader makes no cloud call
# Each sim spinupd has a world of its own, so what i did shows in its metrics.
kill -TERM "$pid_h"
wait_for "h exits" 10 exited "$pid_h"
start i "redis_url = redis://127.0.0.1:$rport/0" "debug_stop_at = pending"
wait_for "i leads and stops itself between journaling and acting" 15 is_stopped "$pid_i"
ep_i=$(epoch_of i)
[ -n "$ep_i" ] || fail "i never led"
start j "redis_url = redis://127.0.0.1:$rport/0"
wait_for "j takes over" 15 log_has j "leadership acquired"
kill -CONT "$pid_i"
wait_for "i steps down" 10 log_has i "leadership lost"
actions_of() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^spinup_actions_total/ { s += $2 } END { print s + 0 }'; }
wait_for "i serves metrics again" 5 eval '[ -n "$(metric "$port_i" spinup_leader)" ]'
[ "$(actions_of "$port_i")" = "0" ] || fail "the stale leader i issued $(actions_of "$port_i") actions"
[ "$(metric "$port_i" spinup_leader)" = "0" ] || fail "i still reports leadership"
log_has i "pass stopped before a mutation" || fail "i did not log why it stopped"
log_has i "outcome=acted" && fail "i acted after losing its lease"
[ "$(sql "SELECT count(*) FROM actions WHERE epoch = $ep_i AND state <> 'pending' AND coalesce(error, '') NOT LIKE 'settled%'")" -eq 0 ] ||
	fail "a result of the stale leader i was recorded"
j_world() { [ "$(metric "$port_j" spinup_sim_containers)" = "$1" ] && all_ready "$1"; }
wait_for "j converges" 40 j_world "$(sql "SELECT count(*) FROM workspaces WHERE state = 'Running'")"
echo "ok 8 stale leader i (epoch $ep_i) resumed after j took over: no mutation issued"

# -------------------------------------------------- 9 --once exit codes
kill -TERM "$pid_i" "$pid_j"
wait_for "i exits" 10 exited "$pid_i"
wait_for "j exits" 10 exited "$pid_j"
DB9=$base/${dbname}_once
psql -XAtq "$DATABASE_URL" -c "CREATE DATABASE ${dbname}_once" || fail "create database ${dbname}_once"
"$bin/spinctl" --db "$DB9" migrate >/dev/null || fail "spinctl migrate (9)"
sed -e "s#^database_url = .*#database_url = $DB9#" -e "s#^lease_key = .*#lease_key = spinup:test:$$:once#" \
	-e "s#^lease_name = .*#lease_name = once#" -e "/^metrics_addr/d" "$work/f.conf" >"$work/once.conf"
chmod 600 "$work/once.conf"
sed -e 's/name: ws4/name: ws9/' -e 's#bob/ws4/#bob/ws9/#' "$work/ws4.yaml" >"$work/ws9.yaml"
echo "  state: Stopped" >>"$work/ws9.yaml"
"$bin/spinctl" --db "$DB9" apply -f "$work/pool.yaml" -f "$work/ws9.yaml" >/dev/null || fail "apply ws9"
once() { "$bin/spinupd" --once --config "$work/once.conf" >"$work/once9.log" 2>&1; echo $?; }
sql9() { psql -XAtq "$DB9" -c "$1"; }
[ "$(once)" = "0" ] || fail "--once on a stopped workspace: $(cat "$work/once9.log")"
[ "$(once)" = "0" ] || fail "--once converged should exit 0: $(cat "$work/once9.log")"
grep -q "outcome=converged" "$work/once9.log" || fail "the second --once was not converged"
sql9 "UPDATE workspaces SET state = 'Running' WHERE name = 'ws9'" >/dev/null
sql9 "INSERT INTO pool_status (pool_id, safety_stopped, safety_stopped_at)
      SELECT id, true, now() - interval '1 second' FROM pools
      ON CONFLICT (pool_id) DO UPDATE SET safety_stopped = true,
      safety_stopped_at = EXCLUDED.safety_stopped_at" >/dev/null
for i in 1 2; do   # the first pass writes ws9's new status, the second only looks
	rc=$(once)
	[ "$rc" = "3" ] || fail "--once $i with its only pool safety-stopped should exit 3, not $rc: $(cat "$work/once9.log")"
	grep -q "no progress: .*1 pool(s) safety-stopped" "$work/once9.log" || fail "--once did not say why it is stuck"
done
grep -q "outcome=stuck" "$work/once9.log" || fail "the pass was not logged as stuck"
[ "$(sql9 "SELECT outcome FROM reconcile_passes ORDER BY id DESC LIMIT 1")" = "stuck" ] ||
	fail "the pass was not recorded as stuck"
"$bin/spinctl" --db "$DB9" clear-safety-stop pool default >/dev/null || fail "clear-safety-stop"
rc=$(once)
[ "$rc" = "0" ] || fail "--once that acts should exit 0, not $rc: $(cat "$work/once9.log")"
grep -q "outcome=acted" "$work/once9.log" || fail "the pass after clearing the stop did not act"
[ "$(sql9 "SELECT ps.safety_stopped::text || (spinup_ms(ps.safety_clear_handled_at) = spinup_ms(p.safety_clear_requested_at))::text
           FROM pool_status ps JOIN pools p ON p.id = ps.pool_id")" = falsetrue ] ||
	fail "the clear request was not handled and echoed in pool_status"
"$bin/spinupd" --help | grep -q "3 stuck" || fail "spinupd --help does not document exit 3"
# a cloud that cannot be reached: the group is unknown, never "converged"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/agent9.secret"
chmod 600 "$work/agent9.secret"
sed -e "s#^cloud = .*#cloud = aws#" -e "s#^agent = .*#agent = http#" "$work/once.conf" >"$work/blind.conf"
printf 'aws_region = us-east-1\naws_endpoint = http://127.0.0.1:1\nagent_secret_file = %s\n' \
	"$work/agent9.secret" >>"$work/blind.conf"
chmod 600 "$work/blind.conf"
AWS_ACCESS_KEY_ID=AKIDTEST AWS_SECRET_ACCESS_KEY=test-secret-not-real \
	"$bin/spinupd" --once --config "$work/blind.conf" >"$work/blind.log" 2>&1
rc=$?
[ "$rc" = "1" ] || fail "--once with an unreachable cloud should exit 1, not $rc: $(cat "$work/blind.log")"
grep -q "could not observe pool default (group" "$work/blind.log" || fail "no warning names the unobserved pool"
grep -q "outcome=blind" "$work/blind.log" || fail "the pass was not logged as blind: $(cat "$work/blind.log")"
grep -q "could not observe pool 'default'" "$work/blind.log" || fail "--once did not say what it could not observe"
echo "ok 9 --once: 0 converged, 3 stuck on a safety stop, 0 acting once spinctl clear-safety-stop is handled, 1 when the cloud cannot be observed"
exit 0
