#!/bin/bash
# bench.d/e2e.sh [BUILD_DIR] - time from `spinctl apply` to READY on the local
# stack (real Postgres, spinup-localcloud, real agents, spinupd), for 1 and
# then 20 workspaces, each from a cold pool (no instance running), printed as
# `| name | value | unit |` rows. Runs its own stack in /tmp, torn down on exit.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
export SPINUP_BIN_DIR=${SPINUP_BIN_DIR:-$top/bin}
for b in spinupd spinctl spinup-agent spinup-localcloud; do
	[ -x "$SPINUP_BIN_DIR/$b" ] || { echo "bench e2e: $SPINUP_BIN_DIR/$b not built (run make)" >&2; exit 1; }
done
LOCALSTACK_DIR=$(mktemp -d /tmp/spinup-bench-e2e.XXXXXX)
export LOCALSTACK_DIR
export LOCALSTACK_PERIOD=${LOCALSTACK_PERIOD:-2}
export LOCALSTACK_BOOT_DELAY=${LOCALSTACK_BOOT_DELAY:-500}
export LOCALSTACK_STANDIN=1
unset DEVENV_DIR

cleanup() {
	"$top/scripts/localstack.sh" down >/dev/null 2>&1
	rm -rf "$LOCALSTACK_DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# fresh_stack: a new stack (new database, no instance running).
fresh_stack() {
	"$top/scripts/localstack.sh" down >/dev/null 2>&1
	eval "$("$top/scripts/localstack.sh" up 2>"$LOCALSTACK_DIR/up.err")" ||
		{ cat "$LOCALSTACK_DIR/up.err" >&2; return 1; }
	# shellcheck disable=SC1091
	. "$LOCALSTACK_DIR/state"
}
# shellcheck source=../e2elib.sh
. "$top/scripts/e2elib.sh"

# manifest POOL N: a pool on the provider's group with room for N workspaces, and N workspaces.
manifest() {
	local pool=$1 n=$2 i
	cat <<EOS
apiVersion: spinup.dev/v1
kind: Pool
metadata:
  name: $pool
spec:
  asgName: $GROUP
  region: ${AWS_REGION:-us-east-1}
  instanceSlots: 8
  warmInstances: 0
  minInstances: 0
  maxInstances: 8
  agentPort: $AGENT_PORT
EOS
	for i in $(seq 1 "$n"); do
		cat <<EOS
---
apiVersion: spinup.dev/v1
kind: Workspace
metadata:
  name: $pool-ws-$i
spec:
  pool: $pool
  owner: bench@example.com
  state: Running
  storage:
    bucket: spinup-bench
    prefix: $pool-ws-$i/
EOS
	done
}

# run N: apply N workspaces, print seconds until all are READY.
run() {
	local n=$1 pool=bench$1 t0 t1 names
	manifest "$pool" "$n" >"$LOCALSTACK_DIR/$pool.yaml"
	names=$(seq -f "$pool-ws-%g" 1 "$n")
	t0=$(date +%s.%N)
	"$LOCALSTACK_DIR/bin/spinctl" apply -f "$LOCALSTACK_DIR/$pool.yaml" >/dev/null || return 1
	# shellcheck disable=SC2086
	e2e_wait 300 READY $names || { e2e_diagnose $names >&2; return 1; }
	t1=$(date +%s.%N)
	awk "BEGIN{printf \"%.2f\", $t1 - $t0}"
}

fresh_stack || exit 1
s1=$(run 1) || exit 1
printf '| apply->READY 1 workspace (local stack) | %s | s |\n' "$s1"
fresh_stack || exit 1
s20=$(run 20) || exit 1
printf '| apply->READY 20 workspaces (local stack) | %s | s |\n' "$s20"
