#!/bin/bash
# run-tests.sh [BUILD_DIR] - run the whole suite on a throwaway Postgres + Redis.
#
# Runs every cmocka binary BUILD_DIR/tests/test_* and every tests/test_*.sh,
# each with DATABASE_URL, REDIS_URL and SPINUP_BIN_DIR in the environment,
# then prints one closing line "tests: N passed, N failed, N skipped". Exit 1 if
# any failed. A script that exits 77 (cannot run here) counts as skipped.
# TESTS="test_spec test_foo" limits the run to those names.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
export SPINUP_BIN_DIR=${SPINUP_BIN_DIR:-$top/bin}
case "$SPINUP_BIN_DIR" in /*) ;; *) SPINUP_BIN_DIR=$top/$SPINUP_BIN_DIR ;; esac
export DEVENV_DIR=$top/.devenv/test-$$
export SPINUP_TOP=$top

cleanup() { DEVENV_DIR=$DEVENV_DIR "$top/scripts/devenv.sh" down; rm -rf "$DEVENV_DIR"; }
trap cleanup EXIT INT TERM
eval "$("$top/scripts/devenv.sh" up)" || { echo "run-tests: could not start devenv" >&2; exit 1; }

passed=0 failed=0 skipped=0 failed_names=""
logdir=$top/$build/test-logs
mkdir -p "$logdir"

wanted() {
	[ -z "${TESTS:-}" ] && return 0
	case " $TESTS " in *" $1 "*) return 0 ;; esac
	return 1
}

run_one() { # name, command...
	local name=$1 start end rc p f
	shift
	wanted "$name" || return 0
	start=$(date +%s.%N)
	"$@" >"$logdir/$name.log" 2>&1
	rc=$?
	end=$(date +%s.%N)
	p=$(grep -aE '^\[  PASSED  \] [0-9]+ test' "$logdir/$name.log" | grep -oE '[0-9]+' | head -1)
	f=$(grep -aE '^\[  FAILED  \] [0-9]+ test' "$logdir/$name.log" | grep -oE '[0-9]+' | head -1)
	if [ -z "$p$f" ] && [ $rc -eq 77 ]; then # a script that cannot run here: skipped
		skipped=$((skipped + 1))
		printf '%-28s skipped: %s\n' "$name" "$(grep -a -m1 '^SKIP' "$logdir/$name.log")"
		return 0
	fi
	if [ -z "$p$f" ]; then # not cmocka: one test, judged by exit code
		if [ $rc -eq 0 ]; then p=1 f=0; else p=0 f=1; fi
	fi
	p=${p:-0} f=${f:-0}
	[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1   # crashed before its summary
	passed=$((passed + p))
	failed=$((failed + f))
	printf '%-28s %4d passed %4d failed  %6.2fs\n' "$name" "$p" "$f" "$(awk "BEGIN{print $end - $start}")"
	if [ "$f" -gt 0 ]; then
		failed_names="$failed_names $name"
		echo "---- $name (exit $rc), last lines of $logdir/$name.log:"
		tail -n 40 "$logdir/$name.log" | sed 's/^/    /'
	fi
}

for t in "$top/$build"/tests/test_*; do
	[ -x "$t" ] || continue
	case "$t" in *.o|*.d) continue ;; esac
	run_one "$(basename "$t")" "$t"
done
for t in "$top"/tests/test_*.sh; do
	[ -f "$t" ] || continue
	run_one "$(basename "$t" .sh)" bash "$t"
done

[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "tests: $passed passed, $failed failed${skipped:+, $skipped skipped}"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
