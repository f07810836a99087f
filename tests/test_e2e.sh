#!/bin/bash
# test_e2e.sh - the whole system on real parts, judged by exit code.
#
# Starts a local stack of its own (scripts/localstack.sh in a throwaway
# LOCALSTACK_DIR under /tmp: Postgres, Redis, spinup-localcloud whose
# instances are real spinup-agent processes, spinupd with the AWS and HTTP
# drivers), always torn down on exit, and checks:
#   1. the example manifests converge: Running workspaces READY with a URL
#      that answers, the Stopped one STOPPED
#   2. an agent killed under a workspace: drift is reported naming it, and
#      the workspace is READY again with its (synced) files
#   3. an instance terminated in the provider: replaced, workspaces READY again
#   4. a file written, the workspace stopped, its instance gone, started
#      again on another instance: the file is there (sync on stop, restore);
#      then a stop whose sync takes longer than the lease (8 s > 6 s): no
#      leadership change (same fencing epoch), no pass blocked by it, the
#      workspace STOPPED only after the sync, its file in the bucket
#   5. through injected throttling and 5xx answers a new workspace converges
#   6. failover on one shared world: a standby spinupd, the leader killed
#      (-9) while new workspaces boot; the standby takes over, every
#      workspace is READY with exactly one workspace process, and no journal
#      entry of the dead leader is left pending
#   7. in the end `spinctl drift` reports no drift; `spinupd --dry-run`
#      beside the leader observes the agents with the current epoch and
#      exits 0; no secret in any log
# Prints one line per check; the first failure prints the diagnosis and
# exits 1. Needs SPINUP_BIN_DIR (the binaries) and the tools of
# scripts/install-deps.sh; DATABASE_URL/REDIS_URL of the runner are not used.
set -uo pipefail

top=${SPINUP_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
export SPINUP_BIN_DIR=${SPINUP_BIN_DIR:-$top/bin}
for b in spinupd spinctl spinup-agent spinup-localcloud; do
	[ -x "$SPINUP_BIN_DIR/$b" ] || { echo "test_e2e: $SPINUP_BIN_DIR/$b is not built" >&2; exit 1; }
done

LOCALSTACK_DIR=$(mktemp -d /tmp/spinup-e2e.XXXXXX)
export LOCALSTACK_DIR
export LOCALSTACK_PERIOD=${LOCALSTACK_PERIOD:-1}
export LOCALSTACK_BOOT_DELAY=${LOCALSTACK_BOOT_DELAY:-200}
export LOCALSTACK_SYNC_INTERVAL=${LOCALSTACK_SYNC_INTERVAL:-2}
export LOCALSTACK_STANDIN=1   # the built-in workspace, even where code-server is installed
unset DEVENV_DIR
checks=0
failed=0

cleanup() {
	local rc=$?
	[ $failed -eq 1 ] || [ $rc -ne 0 ] && e2e_diagnose alice-blog bob-api carol-notes 2>/dev/null
	"$top/scripts/localstack.sh" down || rc=1
	if pgrep -f "^$LOCALSTACK_DIR/" >/dev/null; then
		echo "test_e2e: processes of $LOCALSTACK_DIR still run after down" >&2
		rc=1
	fi
	# sanitizer builds (make check) report at exit, into the daemons' logs
	if grep -rlE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$LOCALSTACK_DIR/logs" >&2; then
		grep -rhE -A15 "ERROR: (Address|Leak)Sanitizer|runtime error:" "$LOCALSTACK_DIR/logs" | head -60 >&2
		echo "test_e2e: a sanitizer reported an error (logs above)" >&2
		rc=1
	fi
	[ -n "${E2E_KEEP_LOGS:-}" ] && cp -r "$LOCALSTACK_DIR/logs" "$E2E_KEEP_LOGS"
	rm -rf "$LOCALSTACK_DIR"
	exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() { echo "FAIL: $*" >&2; failed=1; exit 1; }
ok() { checks=$((checks + 1)); echo "ok $checks - $*"; }

# shellcheck source=../scripts/e2elib.sh
. "$top/scripts/e2elib.sh"

eval "$("$top/scripts/localstack.sh" up)" || fail "localstack up"
spinctl=$LOCALSTACK_DIR/bin/spinctl
ok "local stack up"

# lc_terminate INSTANCE: the provider terminates it, as AWS would on a
# hardware fault (not a request of the operator).
lc_terminate() {
	curl -fsS -m 5 -X POST "$LOCALCLOUD_ADMIN_URL/instances/$1/terminate" >/dev/null
}

# 1. converge the examples
"$spinctl" apply -f "$top/manifests/examples/" >/dev/null || fail "spinctl apply manifests/examples/"
e2e_wait 90 READY alice-blog bob-api || fail "alice-blog and bob-api did not become READY"
e2e_wait 30 STOPPED carol-notes || fail "carol-notes did not become STOPPED"
for n in alice-blog bob-api; do
	curl -fsS -m 5 -o /dev/null "$(e2e_url "$n")/" || fail "$n: $(e2e_url "$n") does not answer"
done
ok "examples converge: alice-blog, bob-api READY and answering, carol-notes STOPPED"

# 2. kill the agent under alice-blog
e2e_put alice-blog kept.txt "alice $$" || fail "write a file into alice-blog"
e2e_until 20 e2e_bucket_has alice-blog kept.txt || fail "kept.txt of alice-blog was never synced"
pid=$(e2e_agent_pid alice-blog) || fail "no agent found under alice-blog"
[ -n "$pid" ] || fail "no agent found under alice-blog"
inst=$(e2e_status alice-blog instance_id)
kill -KILL "$pid"
drift_names_it() {
	"$spinctl" drift >"$LOCALSTACK_DIR/drift.out" 2>&1
	[ $? -eq 1 ] && grep -qE "alice-blog|$inst" "$LOCALSTACK_DIR/drift.out"
}
e2e_until 30 drift_names_it || fail "spinctl drift did not report the agent of alice-blog ($inst) gone"
ok "agent killed: spinctl drift exits 1 naming alice-blog/$inst"
e2e_until 90 e2e_ready_elsewhere alice-blog "$inst" ||
	fail "alice-blog not READY on another instance after its agent on $inst was killed"
[ "$(e2e_get alice-blog kept.txt)" = "alice $$" ] || fail "kept.txt of alice-blog lost"
ok "alice-blog READY again (instance $(e2e_status alice-blog instance_id)) with its files"

# 3. the provider terminates bob-api's instance
inst=$(e2e_status bob-api instance_id)
[ -n "$inst" ] || fail "bob-api has no instance"
lc_terminate "$inst" || fail "provider admin: terminate $inst"
e2e_until 90 e2e_ready_elsewhere bob-api "$inst" || fail "bob-api not READY off terminated $inst"
e2e_wait 90 READY alice-blog bob-api || fail "workspaces not READY after $inst was terminated"
curl -fsS -m 5 -o /dev/null "$(e2e_url bob-api)/" || fail "bob-api does not answer after replacement"
ok "instance $inst terminated: bob-api READY on $(e2e_status bob-api instance_id)"

# 4. a file survives stop, loss of the instance, start elsewhere
e2e_put bob-api moved.txt "bob $$" || fail "write a file into bob-api"
inst=$(e2e_status bob-api instance_id)
e2e_set_state bob-api Stopped
e2e_wait 60 STOPPED bob-api || fail "bob-api did not stop"
e2e_bucket_has bob-api moved.txt || fail "stopping bob-api did not sync moved.txt"
lc_terminate "$inst" || fail "provider admin: terminate $inst"
e2e_set_state bob-api Running
e2e_until 90 e2e_ready_elsewhere bob-api "$inst" || fail "bob-api did not start again off $inst"
[ "$(e2e_get bob-api moved.txt)" = "bob $$" ] || fail "moved.txt of bob-api lost across stop/start"
ok "bob-api stopped, started on $(e2e_status bob-api instance_id): moved.txt is there"

# 4b. a sync slower than the lease: agents accept the stop (202) and sync in
# the background, so no call outlasts the lease and nobody takes over
e2e_put alice-blog slow.txt "slow $$" || fail "write a file into alice-blog"
ep_slow=$(e2e_sql "SELECT max(epoch) FROM operator_leases")
mark=$(wc -c <"$LOCALSTACK_DIR/logs/spinupd.log")
echo 8 >"$LOCALSTACK_DIR/run/sync-delay"
t0=$(date +%s)
e2e_set_state alice-blog Stopped
e2e_wait 60 STOPPED alice-blog || fail "alice-blog did not stop with an 8 s sync"
took=$(( $(date +%s) - t0 ))
echo 0 >"$LOCALSTACK_DIR/run/sync-delay"
e2e_bucket_has alice-blog slow.txt || fail "stopping alice-blog did not sync slow.txt"
[ "$took" -ge 8 ] || fail "alice-blog STOPPED after ${took} s, before its 8 s sync could end"
[ "$(e2e_sql "SELECT max(epoch) FROM operator_leases")" = "$ep_slow" ] ||
	fail "leadership changed (epoch $ep_slow -> $(e2e_sql "SELECT max(epoch) FROM operator_leases")) during a sync slower than the lease"
max_ms=$(tail -c +$((mark + 1)) "$LOCALSTACK_DIR/logs/spinupd.log" |
	sed -n 's/.* pass outcome=.* ms=\([0-9]*\).*/\1/p' | sort -n | tail -1)
[ -n "$max_ms" ] && [ "$max_ms" -lt 6000 ] || fail "a pass took ${max_ms:-?} ms during the slow sync"
e2e_set_state alice-blog Running
e2e_wait 60 READY alice-blog || fail "alice-blog did not start again after the slow stop"
ok "stop with an 8 s sync (lease 6 s): STOPPED after ${took} s, epoch $ep_slow kept, longest pass ${max_ms} ms"

# 5. a flaky provider (throttling, 5xx): the driver retries, a new workspace converges
curl -fsS -m 5 -X POST "$LOCALCLOUD_ADMIN_URL/faults?throttle_every=3&error_every=7" >/dev/null ||
	fail "provider admin: faults"
cat >"$LOCALSTACK_DIR/dave.yaml" <<EOF
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: dave-docs
spec:
  owner: dave
  pool: default
  state: Running
  storage:
    bucket: spinup-workspaces
    prefix: dave/dave-docs/
EOF
"$spinctl" apply -f "$LOCALSTACK_DIR/dave.yaml" >/dev/null || fail "apply dave-docs"
e2e_wait 90 READY dave-docs || fail "dave-docs not READY with a flaky provider"
grep -qE "Throttling|RequestLimitExceeded|InternalFailure|InternalError" "$LOCALSTACK_DIR/logs/localcloud.log" ||
	fail "the provider injected no fault"
curl -fsS -m 5 -X POST "$LOCALCLOUD_ADMIN_URL/faults?throttle_every=0&error_every=0" >/dev/null
ok "dave-docs READY through injected throttling and 5xx"

# 6. failover: kill -9 the leader while it is bringing workspaces up
standby_conf=$LOCALSTACK_DIR/spinupd-standby.conf
sed "s/^metrics_addr = .*/metrics_addr = 127.0.0.1:$((20000 + RANDOM % 12768))/" \
	"$LOCALSTACK_DIR/spinupd.conf" >"$standby_conf"
chmod 600 "$standby_conf"
leader=$(cat "$LOCALSTACK_DIR/run/spinupd.pid")
(
	cd "$LOCALSTACK_DIR" && exec setsid "$LOCALSTACK_DIR/bin/spinupd" --cloud aws --agent http \
		--config "$standby_conf" >>"$LOCALSTACK_DIR/logs/spinupd-standby.log" 2>&1 </dev/null
) &
standby=$!
sleep 1
kill -0 "$standby" 2>/dev/null || { cat "$LOCALSTACK_DIR/logs/spinupd-standby.log" >&2; fail "the standby spinupd did not start"; }
epoch=$(e2e_sql "SELECT max(epoch) FROM operator_leases")
for n in 1 2 3 4; do
	printf -- '---\napiVersion: spinup.dev/v1\nkind: Workspace\nmetadata:\n  name: fo-%s\n' "$n"
	printf 'spec:\n  owner: failover\n  pool: default\n  storage:\n'
	printf '    bucket: spinup-workspaces\n    prefix: failover/fo-%s/\n' "$n"
done >"$LOCALSTACK_DIR/failover.yaml"
"$spinctl" apply -f "$LOCALSTACK_DIR/failover.yaml" >/dev/null || fail "apply fo-1..fo-4"
booting() { e2e_sql "SELECT count(*) FROM workspace_status s JOIN workspaces w ON w.id = s.workspace_id
	WHERE w.name LIKE 'fo-%' AND s.phase IN ('BOOTING_CONTAINER', 'READY')" | grep -qv '^0$'; }
e2e_until 60 booting || fail "no fo- workspace reached BOOTING_CONTAINER under the first leader"
kill -KILL "$leader"
echo "$standby" >"$LOCALSTACK_DIR/run/spinupd.pid"   # so localstack.sh down stops it
e2e_wait 120 READY fo-1 fo-2 fo-3 fo-4 alice-blog bob-api dave-docs ||
	fail "the standby did not converge after the leader was killed"
[ "$(e2e_sql "SELECT max(epoch) FROM operator_leases")" -gt "$epoch" ] ||
	fail "the standby acts without a new fencing epoch"
one_process_each() {
	local dups
	dups=$(pgrep -af "^$LOCALSTACK_DIR/bin/spinup-agent workspace " |
		sed -n 's|.*/workspaces/\([0-9]*\)$|\1|p' | sort | uniq -d)
	[ -z "$dups" ] || { echo "workspace ids with two processes: $dups" >&2; return 1; }
	[ "$(pgrep -af "^$LOCALSTACK_DIR/bin/spinup-agent workspace " | wc -l)" -eq 7 ]
}
e2e_until 30 one_process_each || fail "not exactly one workspace process per running workspace"
[ "$(e2e_sql "SELECT count(*) FROM actions WHERE state = 'pending' AND epoch <= $epoch")" = 0 ] ||
	fail "journal entries of the killed leader are still pending"
ok "leader killed mid-convergence: the standby (epoch > $epoch) brought fo-1..fo-4 READY, one process each"

# 7. in sync at the end
in_sync() { "$spinctl" drift >"$LOCALSTACK_DIR/drift.out" 2>&1; }
e2e_until 60 in_sync || { cat "$LOCALSTACK_DIR/drift.out" >&2; fail "drift remains after recovery"; }
ok "spinctl drift: in sync"

# 8. a dry run next to the leader: it never leads, so it observes the agents
# with the current fencing epoch (read, not bumped), which they accept
ep0=$(psql -XAtq "$DATABASE_URL" -c "SELECT max(epoch) FROM operator_leases")
"$LOCALSTACK_DIR/bin/spinupd" --dry-run --config "$LOCALSTACK_DIR/spinupd.conf" \
	>"$LOCALSTACK_DIR/dry.out" 2>"$LOCALSTACK_DIR/dry.err" ||
	fail "spinupd --dry-run on the live stack: $(tail -n 3 "$LOCALSTACK_DIR/dry.err")"
grep -q "observes with the current fencing epoch=$ep0 " "$LOCALSTACK_DIR/dry.err" ||
	fail "spinupd --dry-run did not observe with epoch $ep0"
[ "$(psql -XAtq "$DATABASE_URL" -c "SELECT max(epoch) FROM operator_leases")" = "$ep0" ] ||
	fail "spinupd --dry-run bumped the epoch"
ok "spinupd --dry-run next to the leader: agents accept the current epoch $ep0"

# 9. no secret in any log
leaks=$(grep -rlF -e "$(cat "$SPINUP_AGENT_SECRET_FILE")" \
	-e "$(sed -n 's/^aws_secret_access_key = //p' "$AWS_SHARED_CREDENTIALS_FILE")" \
	"$LOCALSTACK_DIR/logs" 2>/dev/null)
[ -z "$leaks" ] || fail "a secret appears in $leaks"
ok "no secret in the logs"
echo "test_e2e: $checks checks passed"
