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

cleanup() {
	local d
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
for cmd in migrate apply diff get delete events; do
	run 0 "$cmd" --help
	out_has "usage: spinctl $cmd"
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
run 0 get ws bob-api -o yaml
out_has 'state: "Stopped"'
run 0 get pools -o wide
out_has "spinup-default"
run 1 get workspaces nobody-here
err_has "not found"
ok "get workspaces and pools in every format"

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
ok "broken manifests: positioned errors, exit 1, nothing written"

# ---------------------------------------------------------------- delete, events

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
[ "$(sql "SELECT count(*) FROM workspaces")" = 2 ] || fail "delete removed rows"
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

export DATABASE_URL=$DATABASE_URL_SAVED
echo "test_spinctl: $checks checks passed"
