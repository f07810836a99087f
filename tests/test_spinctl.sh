#!/bin/bash
# test_spinctl.sh - spinctl end to end on a real Postgres, judged by exit code.
#
# Needs DATABASE_URL (a server where we may CREATE DATABASE) and
# SPINUP_BIN_DIR (bin/ with spinctl); scripts/run-tests.sh sets both. Works in
# databases of its own, dropped on exit. Prints one line per check; the
# first failing check stops the script with exit 1.
set -uo pipefail

: "${DATABASE_URL:?DATABASE_URL is not set}"
top=${SPINUP_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
spinctl=${SPINUP_BIN_DIR:-$top/bin}/spinctl
[ -x "$spinctl" ] || { echo "test_spinctl: $spinctl not built" >&2; exit 1; }

work=$(mktemp -d /tmp/spinup-spinctl-test.XXXXXX)
dbs=()
checks=0

watch_pid=
cleanup() {
	local d
	[ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
	for d in "${dbs[@]}"; do
		psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1
	done
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	for f in "$work"/out "$work"/err; do
		[ -f "$f" ] && { echo "---- $(basename "$f"):" >&2; head -n 40 "$f" >&2; }
	done
	exit 1
}
ok() { checks=$((checks + 1)); echo "ok $checks - $*"; }

# url_for DBNAME: DATABASE_URL pointing at another database on the same server.
url_for() {
	printf '%s\n' "$DATABASE_URL" | sed -E "s#^(postgres(ql)?://[^/]*)/?[^?]*#\1/$1#"
}

new_db() { # -> NEW_URL: a fresh database, dropped at exit (no subshell: dbs must persist)
	local name="spinup_sh_$$_${#dbs[@]}"
	psql -q "$DATABASE_URL" -c "CREATE DATABASE $name" >/dev/null || fail "create database $name"
	dbs+=("$name")
	NEW_URL=$(url_for "$name")
}

# run EXPECTED_RC ARGS...: run spinctl, keep stdout/stderr, check the exit code.
run() {
	local want=$1 rc
	shift
	"$spinctl" "$@" >"$work/out" 2>"$work/err"
	rc=$?
	[ "$rc" -eq "$want" ] || fail "spinctl $* exited $rc, expected $want"
}
out_has() { grep -qF -- "$1" "$work/out" || fail "stdout lacks '$1'"; }
err_has() { grep -qF -- "$1" "$work/err" || fail "stderr lacks '$1'"; }
sql() { psql -qAt "$DB" -c "$1"; }

# ---------------------------------------------------------------- help

run 0 --version
out_has "spinctl 0.1.0 (schema version"
run 0 --help
out_has "usage: spinctl"
for cmd in migrate apply diff get delete events why drift pause resume observe-only reconcile \
	clear-safety-stop \
	silence unsilence; do
	run 0 "$cmd" --help
	out_has "usage: spinctl $cmd "
done
ok "--help on spinctl and every command"

run 2 no-such-command
err_has "'no-such-command' is not a command"
run 2 apply
err_has "nothing to apply"
run 2 get --output xml workspaces
run 2 get nothing
ok "usage errors exit 2 with a message"

# ---------------------------------------------------------------- databases

DATABASE_URL_SAVED=$DATABASE_URL
run 1 --db "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2" get workspaces
err_has "could not connect to the database"
run 2 --db "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2" diff -f /dev/null
ok "unreachable database: clear message, non-zero exit"

new_db; DB=$NEW_URL
export DATABASE_URL=$DB
run 1 get workspaces
err_has "run spinctl migrate"
ok "a database never migrated says: run spinctl migrate"

run 0 migrate
out_has "applied"
run 0 migrate
out_has "nothing to do"
ok "migrate twice"

new_db; DB2=$NEW_URL
"$spinctl" --db "$DB2" migrate >"$work/m1" 2>&1 &
p1=$!
"$spinctl" --db "$DB2" migrate >"$work/m2" 2>&1 &
p2=$!
wait $p1 || fail "concurrent migrate 1: $(cat "$work/m1")"
wait $p2 || fail "concurrent migrate 2: $(cat "$work/m2")"
[ "$(psql -qAt "$DB2" -c 'SELECT count(*) FROM schema_migrations')" = \
  "$(psql -qAt "$DB" -c 'SELECT count(*) FROM schema_migrations')" ] || fail "migration counts differ"
ok "two migrate processes at once"

# ---------------------------------------------------------------- manifests

mkdir -p "$work/m/nested"
cat >"$work/m/pool.yaml" <<'EOF'
apiVersion: spinup.dev/v1
kind: Pool
metadata:
  name: default
spec:
  asgName: spinup-default
  region: eu-west-1
  instanceSlots: 4
  warmInstances: 1
  minInstances: 0
  maxInstances: 8
EOF
cat >"$work/m/nested/workspaces.yml" <<'EOF'
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: alice-blog
spec:
  owner: alice
  pool: default
  state: Running
  image: codercom/code-server:4.20.0
  resources:
    cpu: 1000m
    memoryMiB: 2048
  labels:
    team: web
---
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: bob-api
spec:
  owner: bob
  pool: default
  state: Stopped
EOF
echo "not a manifest" >"$work/m/nested/README.txt"

run 0 apply -f "$work/m" --dry-run
out_has "workspace/alice-blog created (dry run)"
[ "$(sql 'SELECT count(*) FROM workspaces')" = 0 ] || fail "--dry-run wrote rows"
ok "apply --dry-run writes nothing"

run 1 diff -f "$work/m"
out_has "workspace/alice-blog (pool default): would be created"
ok "diff before apply: exit 1"

run 0 apply -f "$work/m"
out_has "pool/default created"
out_has "workspace/alice-blog created"
out_has "workspace/bob-api created"
ok "apply a directory recursively"

run 0 get workspaces
out_has "alice-blog"
out_has "bob-api"
run 0 get workspaces alice-blog -o json
out_has '"owner": "alice"'
out_has '"image": "codercom/code-server:4.20.0"'
python3 -m json.tool <"$work/out" >/dev/null || fail "get -o json is not JSON"
run 0 get workspaces -o json
python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["items"] if isinstance(d, dict) else d) == 2, d' \
	<"$work/out" || fail "get workspaces -o json does not parse to two items"
run 0 get pools -o json
python3 -m json.tool <"$work/out" >/dev/null || fail "get pools -o json is not JSON"
run 0 get ws bob-api -o yaml
out_has 'state: "Stopped"'
run 0 get pools -o wide
out_has "spinup-default"
run 1 get workspaces nobody-here
err_has "not found"
ok "get workspaces and pools in every format"

run 0 get workspaces -o yaml
cp "$work/out" "$work/got.yaml"
run 0 get pools -o yaml
cat "$work/out" >>"$work/got.yaml"
run 0 diff -f "$work/got.yaml"
sed 's/memoryMiB: 2048/memoryMiB: 3072/' "$work/got.yaml" >"$work/edited.yaml"
run 1 diff -f "$work/edited.yaml"
out_has "memory_mib"
ok "get -o yaml applies back: diff exit 0 unchanged, 1 after an edit"

run 0 diff -f "$work/m"
run 0 apply -f "$work/m"
out_has "workspace/alice-blog unchanged"
[ "$(sql "SELECT generation FROM workspaces WHERE name = 'alice-blog'")" = 1 ] ||
	fail "an unchanged apply bumped the generation"
ok "re-apply: unchanged, diff exit 0"

sed -i 's/code-server:4.20.0/code-server:4.21.0/' "$work/m/nested/workspaces.yml"
run 1 diff -f "$work/m"
out_has 'image: "codercom/code-server:4.20.0" -> "codercom/code-server:4.21.0"'
out_has "owner: spinctl"
run 0 apply -f - <"$work/m/nested/workspaces.yml"
out_has "workspace/alice-blog configured"
out_has "workspace/bob-api unchanged"
[ "$(sql "SELECT generation FROM workspaces WHERE name = 'alice-blog'")" = 2 ] ||
	fail "a spec change did not bump the generation"
ok "a changed field: diff names it, apply from stdin configures"

# the UI takes a field over: apply refuses without --force-conflicts
psql -q "$DB" -c "SET ROLE spinup_ui; UPDATE workspaces SET memory_mib = 8192 WHERE name = 'alice-blog'" ||
	fail "ui update"
run 1 diff -f "$work/m"
out_has "memory_mib"
out_has "owner: ui, conflict"
run 1 apply -f "$work/m"
err_has "memory_mib"
err_has "'ui'"
[ "$(sql "SELECT memory_mib FROM workspaces WHERE name = 'alice-blog'")" = 8192 ] ||
	fail "a refused apply wrote"
run 0 apply -f "$work/m" --force-conflicts
[ "$(sql "SELECT memory_mib FROM workspaces WHERE name = 'alice-blog'")" = 2048 ] ||
	fail "--force-conflicts did not write"
ok "ownership: a UI-set field needs --force-conflicts"

# ---------------------------------------------------------------- broken input

cat >"$work/broken.yaml" <<'EOF'
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: carol-notes
spec:
  owner: carol
  pool: default
---
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: Bad_Name
spec:
  owner: dave
  pool: default
  resources:
    cpu: 1000m
    memoryMiB: 1
  colour: blue
EOF
before=$(sql "SELECT count(*), max(generation) FROM workspaces")
run 1 apply -f "$work/m" -f "$work/broken.yaml"
grep -qE "broken\.yaml:[0-9]+:[0-9]+: " "$work/err" || fail "no FILE:LINE:COL diagnostics"
[ "$(grep -cE 'broken\.yaml:[0-9]+:[0-9]+: ' "$work/err")" -ge 2 ] || fail "not every error reported"
[ "$(sql "SELECT count(*), max(generation) FROM workspaces")" = "$before" ] ||
	fail "a broken apply changed the database"
[ "$(sql "SELECT count(*) FROM workspaces WHERE name = 'carol-notes'")" = 0 ] ||
	fail "the valid document of a broken set was written"
run 2 diff -f "$work/broken.yaml"
printf 'kind: [unclosed\n' >"$work/bad-yaml.yaml"
run 1 apply -f "$work/bad-yaml.yaml"
grep -qE "bad-yaml\.yaml:[0-9]+:[0-9]+" "$work/err" || fail "no position for malformed YAML"
run 1 apply -f "$work/does-not-exist.yaml"
err_has "does-not-exist.yaml"
cat >"$work/nopool.yaml" <<'EOF'
# a workspace whose pool exists nowhere: only the database can tell
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: zed-tools
spec:
  owner: zed
  pool: nopool
EOF
run 1 apply -f "$work/m" -f "$work/nopool.yaml"
grep -qE "nopool\.yaml:2:1: workspace/zed-tools: pool 'nopool' does not exist" "$work/err" ||
	fail "a store-level error is not positioned at its document"
run 2 diff -f "$work/nopool.yaml"
grep -qE "nopool\.yaml:2:1: " "$work/err" || fail "diff: store-level error not positioned"
[ "$(sql "SELECT count(*), max(generation) FROM workspaces")" = "$before" ] ||
	fail "an apply refused by the database changed it"
ok "broken manifests: positioned errors, exit 1, nothing written"

# ---------------------------------------------------------------- hostile input

cat >"$work/hostile.yaml" <<'EOF'
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: eve-lab
spec:
  owner: "o'brien'); DROP TABLE workspaces; --"
  pool: default
  image: "registry.example/ünïcödé:✓"
  labels:
    note: "\"quoted\" \\ back 日本"
EOF
run 0 apply -f "$work/hostile.yaml"
[ "$(sql "SELECT owner FROM workspaces WHERE name = 'eve-lab'")" = "o'brien'); DROP TABLE workspaces; --" ] ||
	fail "a hostile owner was not stored verbatim"
run 0 get workspaces eve-lab -o json
python3 -c '
import json, sys
d = json.load(sys.stdin)
w = d["items"][0] if isinstance(d, dict) and "items" in d else d
s = w["spec"]
assert s["owner"] == "o'"'"'brien'"'"'); DROP TABLE workspaces; --", s["owner"]
assert s["image"] == "registry.example/ünïcödé:✓", s["image"]
assert s["labels"]["note"] == "\"quoted\" \\ back 日本", s["labels"]
' <"$work/out" || fail "get -o json does not give the hostile values back verbatim"
run 0 diff -f "$work/hostile.yaml"
sed 's/^  name: eve-lab/  name: "x'"'"'; DROP TABLE pools; --"/' "$work/hostile.yaml" >"$work/hostile-name.yaml"
run 1 apply -f "$work/hostile-name.yaml"
grep -qE "hostile-name\.yaml:4:[0-9]+: metadata\.name" "$work/err" || fail "a hostile name is not refused in place"
python3 -c 'import sys; sys.stdout.write("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata:\n  name: big\nspec:\n  pool: default\n  owner: " + "a" * (10 << 20) + "\n")' \
	>"$work/big.yaml"
run 1 apply -f "$work/big.yaml"
grep -q "big.yaml: file is over the limit of 4194304 bytes" "$work/err" || fail "a 10 MB manifest is not refused by name"
[ "$(sql "SELECT count(*) FROM workspaces WHERE name = 'big'")" = 0 ] || fail "a 10 MB manifest wrote"
[ "$(sql "SELECT count(*) FROM pools")" = 1 ] || fail "the pools table changed"
ok "hostile values stored verbatim, hostile names and 10 MB input refused"

# ---------------------------------------------------------------- delete, events

nws=$(sql "SELECT count(*) FROM workspaces")
run 0 delete workspace bob-api
out_has "workspace/bob-api deletion requested"
[ "$(sql "SELECT deletion_requested_at IS NOT NULL FROM workspaces WHERE name = 'bob-api'")" = t ] ||
	fail "delete did not mark"
run 0 delete workspace bob-api
out_has "already marked"
run 1 delete workspace nobody-here
err_has "not found"
run 0 get workspaces
out_has "DELETE_REQUESTED"
cat >"$work/del.yaml" <<'EOF'
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: alice-blog
spec:
  owner: alice
  pool: default
EOF
run 0 delete -f "$work/del.yaml"
out_has "workspace/alice-blog deletion requested"
[ "$(sql "SELECT count(*) FROM workspaces WHERE deletion_requested_at IS NOT NULL")" = 2 ] ||
	fail "delete -f did not mark"
[ "$(sql "SELECT count(*) FROM workspaces")" = "$nws" ] || fail "delete removed rows"
ok "delete marks deletion_requested_at and removes nothing"

psql -q "$DB" -c "SET ROLE spinup_operator; INSERT INTO workspace_events (workspace_id,
	workspace_name, type, from_phase, to_phase, reason, message, at)
	SELECT id, name, 'DELETE_STARTED', 'READY', 'DELETING', 'DeletionRequested', 'syncing', now()
	FROM workspaces WHERE name = 'alice-blog'" || fail "operator event insert"
run 0 events alice-blog
out_has "DELETE_STARTED"
run 0 events -o json
out_has '"workspace": "alice-blog"'
ok "events"

# ---------------------------------------------------------------- get --watch

# wait_for FILE TEXT: up to 10 s for TEXT to appear in FILE
wait_for() {
	local i
	for i in $(seq 100); do
		grep -qF -- "$2" "$1" && return 0
		sleep 0.1
	done
	return 1
}
"$spinctl" get workspaces --watch >"$work/watch" 2>"$work/watch.err" &
watch_pid=$!
wait_for "$work/watch" "alice-blog" || fail "get --watch printed nothing: $(cat "$work/watch.err")"
grep -qF "dora-docs" "$work/watch" && fail "dora-docs before it was applied"
cat >"$work/dora.yaml" <<'EOF'
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: dora-docs
spec:
  owner: dora
  pool: default
EOF
run 0 apply -f "$work/dora.yaml"
wait_for "$work/watch" "dora-docs" || fail "get --watch did not refresh on an apply"
n=$(grep -c "dora-docs" "$work/watch")
psql -q "$DB" -c "SET ROLE spinup_ui; UPDATE workspaces SET state = 'Stopped' WHERE name = 'dora-docs'" ||
	fail "ui update"
for i in $(seq 100); do [ "$(grep -c "dora-docs" "$work/watch")" -gt "$n" ] && break; sleep 0.1; done
[ "$(grep -c "dora-docs" "$work/watch")" -gt "$n" ] || fail "get --watch did not refresh on a UI write"
kill -INT "$watch_pid"
for i in $(seq 100); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$watch_pid" 2>/dev/null && fail "get --watch ignored SIGINT"
wait "$watch_pid"
rc=$?
watch_pid=
[ "$rc" -eq 0 ] || fail "get --watch exited $rc on SIGINT: $(cat "$work/watch.err")"
ok "get --watch refreshes on NOTIFY and stops on SIGINT"

# ---------------------------------------------------------------- README's "done when"

examples=$top/manifests/examples
if [ -d "$examples" ]; then
	new_db; export DATABASE_URL=$NEW_URL
	run 0 migrate
	run 0 apply -f "$examples/"
	out_has "pool/default created"
	run 0 get workspaces
	for f in "$examples"/*.y*ml; do
		for name in $(sed -n '/^kind: Workspace/,/^spec:/s/^  name: //p' "$f"); do
			out_has "$name"
		done
	done
	run 0 apply -f "$examples/"
	grep -q "created\|configured" "$work/out" && fail "re-applying the examples changed something"
	ok "the examples apply and list; a second apply changes nothing"
fi

# ---------------------------------------------------------------- operator controls

export DATABASE_URL=$DB

for cmd in pause resume observe-only reconcile; do
	run 0 "$cmd" --help
	out_has "spinctl $cmd "
done
run 0 pause workspace alice-blog
out_has "workspace/alice-blog paused until resumed"
[ "$(sql "SELECT paused_until FROM workspaces WHERE name = 'alice-blog'")" = infinity ] ||
	fail "pause did not set paused_until = infinity"
run 0 why alice-blog
out_has "blocked by:    the workspace is paused until resumed"
out_has "who must act:  an operator: spinctl resume workspace alice-blog --pool default"
out_has "next attempt:  none until an operator resumes it"
run 0 pause pool default --for 15m
[ "$(sql "SELECT paused_until BETWEEN now() + interval '14 minutes' AND now() + interval '16 minutes' FROM pools WHERE name = 'default'")" = t ] ||
	fail "pause --for 15m did not set paused_until to now + 15 minutes"
run 0 why alice-blog
ends=$(sql "SELECT to_char(paused_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM pools WHERE name = 'default'")
out_has "blocked by:    pool 'default' is paused until $ends"
out_has "who must act:  nobody: the pause ends by itself; to end it sooner, an operator: spinctl resume pool default"
grep -qE "^next attempt:  $ends, when the pause ends \(in (89[0-9]|900)s\)$" "$work/out" ||
	fail "why does not say when the pool pause ends ($ends)"
run 2 pause pool default --for 3y
err_has "expected a duration"
run 2 pause pool default --pool x
run 1 pause workspace nobody-here
err_has "workspace/nobody-here not found"
run 0 pause all
[ "$(sql "SELECT paused_until FROM operator_controls")" = infinity ] || fail "pause all"
run 0 why alice-blog
out_has "blocked by:    paused globally (operator_controls.paused_until) until resumed"
out_has "who must act:  an operator: spinctl resume all"
run 0 pause workspace alice-blog --for 1h
[ "$(sql "SELECT field_owners->'paused_until'->>'by' FROM workspaces WHERE name = 'alice-blog'")" = spinctl ] ||
	fail "a pause by spinctl is not recorded as spinctl's"
run 0 resume all
run 0 resume workspace alice-blog
run 0 resume pool default
[ "$(sql "SELECT count(*) FROM workspaces WHERE paused_until IS NOT NULL")$(sql "SELECT count(*) FROM pools WHERE paused_until IS NOT NULL")$(sql "SELECT count(*) FROM operator_controls WHERE paused_until IS NOT NULL")" = 000 ] ||
	fail "resume left a pause behind"
run 0 observe-only pool default on
[ "$(sql "SELECT observe_only FROM pools WHERE name = 'default'")" = t ] || fail "observe-only on"
run 0 why alice-blog
out_has "blocked by:    pool 'default' is observe-only until turned off"
out_has "who must act:  an operator: spinctl observe-only pool default off"
out_has "next attempt:  none until an operator turns it off"
run 0 observe-only pool default off
run 0 observe-only all on
[ "$(sql "SELECT observe_only FROM operator_controls")" = t ] || fail "observe-only all on"
run 0 observe-only all off
run 2 observe-only pool default maybe
run 0 reconcile workspace alice-blog
[ "$(sql "SELECT reconcile_requested_at IS NOT NULL FROM workspaces WHERE name = 'alice-blog'")" = t ] ||
	fail "reconcile did not set reconcile_requested_at"
ok "operator controls: pause/resume (workspace, pool, all, --for), observe-only, reconcile write rows; why says until when and who lifts them"

# A safety stop is spinupd's row (pool_status, set here as spinupd would);
# the way out is a request in the pool row, which why names.
run 0 clear-safety-stop --help
out_has "usage: spinctl clear-safety-stop pool NAME"
run 0 observe-only --help
out_has "does not lift"
out_has "spinctl clear-safety-stop pool NAME"
pool_id=$(sql "SELECT id FROM pools WHERE name = 'default'")
gen=$(sql "SELECT generation FROM pools WHERE name = 'default'")
sql "INSERT INTO pool_status (pool_id, safety_stopped, safety_stopped_at)
     VALUES ($pool_id, true, now() - interval '1 minute')" >/dev/null
run 0 why alice-blog
out_has "blocked by:    pool 'default' is safety-stopped: a plan went over the destructive budget"
out_has "who must act:  an operator: review the plan (spinctl drift), then spinctl clear-safety-stop pool default"
out_has "next attempt:  none until an operator clears the stop"
grep -q "pool_status" "$work/out" && fail "why still points at pool_status"
run 0 get pools -o wide
grep -E "^default .* stopped$" "$work/out" >/dev/null || fail "get pools -o wide does not show the stop"
run 2 clear-safety-stop workspace alice-blog
run 2 clear-safety-stop pool
run 1 clear-safety-stop pool nobody-here
err_has "pool/nobody-here not found"
run 0 clear-safety-stop pool default
out_has "pool/default safety-stop clear requested"
[ "$(sql "SELECT safety_clear_requested_at > now() - interval '1 minute' FROM pools WHERE name = 'default'")" = t ] ||
	fail "clear-safety-stop did not set pools.safety_clear_requested_at"
[ "$(sql "SELECT generation FROM pools WHERE name = 'default'")" = "$gen" ] ||
	fail "clear-safety-stop bumped the pool's generation"
[ "$(sql "SELECT safety_stopped FROM pool_status WHERE pool_id = $pool_id")" = t ] ||
	fail "clear-safety-stop wrote pool_status (spinupd's)"
run 0 why alice-blog
out_has "safety-stopped: a plan went over the destructive budget; a clear was requested at"
out_has "who must act:  nobody: spinupd lifts the stop on its next pass"
run 0 get pools -o wide
out_has "stopped, clear requested"
# spinupd handles it: the stop goes, the request is echoed
sql "UPDATE pool_status SET safety_stopped = false, safety_clear_handled_at = p.safety_clear_requested_at
     FROM pools p WHERE p.id = pool_status.pool_id" >/dev/null
run 0 get pools default -o json
python3 -c 'import json,sys; d=json.load(sys.stdin); d=d["items"][0] if "items" in d else d; s=d["status"]
assert s["safetyStopped"] is False and s["safetyClearHandledAt"] == s["safetyClearRequestedAt"] != None, s' \
	<"$work/out" || fail "get pools -o json does not echo the handled clear"
run 0 why alice-blog
grep -q "safety-stopped" "$work/out" && fail "why still says safety-stopped after the stop was cleared"
ok "clear-safety-stop writes the request row; why names it and sees it pending; get pools shows the stop and the echo"

# ---------------------------------------------------------------- drift silences

sql "INSERT INTO drift (subject, cls, reason, first_seen, last_seen) VALUES
	('instance/i-0123456789abcdef0', 'missing', 'InstanceLost', now(), now()),
	('workspace/alice-blog', 'changed', 'ImageChanged', now(), now())" >/dev/null
run 1 drift
out_has "instance/i-0123456789abcdef0"
run 0 silence 'instance/*' --for 2h -m "maintenance window"
out_has "silence/"
run 1 drift
grep -q "instance/i-0123" "$work/out" && fail "a silenced instance finding is still listed"
out_has "workspace/alice-blog"
run 0 silence workspace/alice-blog --reason OtherReason --for 10m
run 1 drift
out_has "workspace/alice-blog"
run 0 silence workspace/alice-blog --reason ImageChanged --for 10m
run 0 drift
out_has "in sync"
run 0 drift --all
out_has "missing (silenced)"
run 0 silence --list
out_has "maintenance window"
out_has "ImageChanged"
id=$(sql "SELECT id FROM drift_silences WHERE reason = 'ImageChanged'")
run 0 unsilence "$id"
run 1 unsilence "$id"
err_has "no silence $id"
run 1 drift
out_has "workspace/alice-blog"
run 2 silence workspace/alice-blog
err_has "--for is required"
run 1 silence "bad subject" --for 1h
err_has "drift_silences_subject_valid"
sql "UPDATE drift_silences SET until = created_at + interval '1 ms'" >/dev/null
run 1 drift
out_has "instance/i-0123456789abcdef0"
ok "drift silences: hide matching findings (subject, prefix*, reason) until they expire; list; unsilence; bad input refused by name"

export DATABASE_URL=$DATABASE_URL_SAVED
echo "test_spinctl: $checks checks passed"
