#!/bin/bash
# bench.d/store.sh [BUILD_DIR] - store benchmarks: drivers/pgstore.c alone
# (tools/bench_pgstore), then spinctl end to end (YAML decode, connect,
# apply, list) over N workspaces (STORE_BENCH_N, default 1000), on the
# throwaway Postgres scripts/bench.sh started (DATABASE_URL).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build=$top/$build ;; esac
bin=${SPINUP_BIN_DIR:-$top/bin}
n=${STORE_BENCH_N:-1000}

"$build/tools/bench_pgstore" "$n"

work=$(mktemp -d /tmp/spinup-bench-store.XXXXXX)
db=spinup_bench_store_$$
cleanup() {
	psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
psql -q "$DATABASE_URL" -c "CREATE DATABASE $db" >/dev/null
url=$(printf '%s\n' "$DATABASE_URL" | sed -E "s#^(postgres(ql)?://[^/]*)/?[^?]*#\1/$db#")

mkdir "$work/m"
printf 'apiVersion: spinup.dev/v1\nkind: Pool\nmetadata:\n  name: bench\n' >"$work/m/pool.yaml"
printf 'spec:\n  asgName: asg-bench\n  region: eu-west-1\n  maxInstances: 500\n' >>"$work/m/pool.yaml"
{
	for i in $(seq "$n"); do
		printf -- '---\napiVersion: spinup.dev/v1\nkind: Workspace\nmetadata:\n'
		printf '  name: ws-%d\nspec:\n  owner: user%d\n  pool: bench\n' "$i" "$i"
	done
} >"$work/m/workspaces.yaml"

ms() { echo $(( $(date +%s%N) / 1000000 )); }
# timed LABEL ARGS...: run spinctl, print a row with its wall time
timed() {
	local label=$1 t0
	shift
	t0=$(ms)
	"$bin/spinctl" --db "$url" "$@" >"$work/out"
	echo "| store: spinctl $label | $(( $(ms) - t0 )) | ms |"
}
"$bin/spinctl" --db "$url" migrate >/dev/null
timed "apply -f ($n workspaces, create)" apply -f "$work/m"
timed "apply -f ($n workspaces, unchanged)" apply -f "$work/m"
timed "diff -f ($n workspaces, no change)" diff -f "$work/m"
timed "get workspaces ($n rows, table)" get workspaces
timed "get workspaces ($n rows, json)" get workspaces -o json
