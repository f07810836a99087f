#!/bin/bash
# bench.sh [BUILD_DIR] - run every benchmark and print one markdown table.
#
# Each scripts/bench.d/*.sh prints rows "| name | value | unit |" on stdout
# (progress on stderr). They run in name order inside one throwaway Postgres
# and Redis (scripts/devenv.sh), stopped on exit. `make bench` builds first.
# BENCH_ONLY="aws agent" runs a subset. A failing script is reported in the
# table and makes the run exit 1; the others still run.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build=$top/$build ;; esac
cd "$top"

export DEVENV_DIR=${DEVENV_DIR:-$(mktemp -d /tmp/spinup-bench.XXXXXX)}
if ! env_out=$(scripts/devenv.sh up); then
	echo "bench: could not start Postgres/Redis" >&2
	exit 1
fi
eval "$env_out"
trap 'scripts/devenv.sh down >/dev/null 2>&1' EXIT
export SPINUP_BIN_DIR=${SPINUP_BIN_DIR:-$top/bin} SPINUP_TOP=$top

echo "machine: $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| benchmark | value | unit |"
echo "|---|---:|---|"
rc=0
for s in scripts/bench.d/*.sh; do
	name=$(basename "$s" .sh)
	if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" $name "* ]]; then
		continue
	fi
	if ! out=$(bash "$s" "$build" 2>"$DEVENV_DIR/bench-$name.err"); then
		echo "| $name: FAILED (see below) | - | - |"
		sed 's/^/    /' "$DEVENV_DIR/bench-$name.err" | tail -n 10 >&2
		rc=1
	fi
	printf '%s\n' "$out" | grep '^|' || true
done
exit $rc
